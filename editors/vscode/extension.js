// The stepc extension: .step files get the TextMate grammar (package.json contributes
// it) and the stepc language server, started as `<stepc.server.path> lsp` over stdio:
// diagnostics as you type, hover, go to definition, references, rename, completion,
// formatting and quick fixes all come from the server.
"use strict";

const vscode = require("vscode");
const { LanguageClient, TransportKind } = require("vscode-languageclient/node");

let client;

function serverOptions() {
  const command = vscode.workspace.getConfiguration("stepc").get("server.path", "stepc");
  return { command, args: ["lsp"], transport: TransportKind.stdio };
}

async function start() {
  const starting = new LanguageClient("stepc", "stepc language server", serverOptions(), {
    documentSelector: [{ language: "step" }],
  });
  await starting.start();
  client = starting; // only a client that started is stopped later
}

async function activate(context) {
  context.subscriptions.push(
    // A new server path takes effect without reloading the window.
    vscode.workspace.onDidChangeConfiguration(async (event) => {
      if (event.affectsConfiguration("stepc.server.path")) {
        await deactivate();
        await start();
      }
    }),
  );
  try {
    await start();
  } catch (error) {
    vscode.window.showErrorMessage(
      `stepc: could not start \`${serverOptions().command} lsp\` (${error.message}). ` +
        "Install it with `pip install 'stepc[lsp]'`, or set stepc.server.path.",
    );
  }
}

async function deactivate() {
  const running = client;
  client = undefined;
  if (running) {
    await running.stop();
  }
}

module.exports = { activate, deactivate };
