// Activates extension.js against stand-ins for the `vscode` API and vscode-languageclient's
// LanguageClient, and prints as JSON what it did: the server it started (command, args,
// transport), for which documents, what it did when the setting changed and when the
// server could not start. tests/test_textmate.py runs it.
//   node test/activate.cjs [SERVER_PATH]
"use strict";

const Module = require("node:module");

const events = [];
const settings = { "server.path": process.argv[2] };
let onConfigurationChange;
let failStart = false;

class LanguageClient {
  constructor(id, name, serverOptions, clientOptions) {
    events.push({ event: "client", id, serverOptions, clientOptions });
  }
  async start() {
    if (failStart) throw new Error("spawn stepc ENOENT");
    events.push({ event: "start" });
  }
  async stop() {
    events.push({ event: "stop" });
  }
}

const vscode = {
  workspace: {
    getConfiguration: (section) => ({
      get: (key, fallback) => settings[key] ?? fallback,
      section,
    }),
    onDidChangeConfiguration: (listener) => {
      onConfigurationChange = listener;
      return { dispose() {} };
    },
  },
  window: {
    showErrorMessage: (message) => events.push({ event: "error", message }),
  },
};
const stubs = {
  vscode,
  "vscode-languageclient/node": { LanguageClient, TransportKind: { stdio: 0 } },
};

const load = Module._load;
Module._load = function (request, ...rest) {
  return request in stubs ? stubs[request] : load.call(this, request, ...rest);
};

async function main() {
  const extension = require("../extension.js");
  await extension.activate({ subscriptions: [] });
  settings["server.path"] = "/elsewhere/stepc";
  await onConfigurationChange({ affectsConfiguration: (name) => name === "stepc.server.path" });
  await onConfigurationChange({ affectsConfiguration: () => false });
  await extension.deactivate();
  failStart = true;
  await extension.activate({ subscriptions: [] });
  process.stdout.write(JSON.stringify(events));
}

main();
