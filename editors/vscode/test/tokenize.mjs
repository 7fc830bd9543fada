// Tokenizes .step files with the real TextMate engine VS Code uses (vscode-textmate on
// vscode-oniguruma) and this extension's grammar, and prints the tokens as JSON:
//   node test/tokenize.mjs FILE...
//   {"FILE": [{"line": 1, "start": 1, "end": 6, "text": "model", "scopes": [...]}, ...]}
// Lines and columns are 1-based, `end` exclusive, as in stepc's spans.
// tests/test_textmate.py runs it over every shipped spec.
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const require = createRequire(import.meta.url);
const textmate = require("vscode-textmate");
const oniguruma = require("vscode-oniguruma");

const here = dirname(fileURLToPath(import.meta.url));
const grammarPath = join(here, "..", "syntaxes", "step.tmLanguage.json");

async function loadGrammar() {
  const wasm = readFileSync(require.resolve("vscode-oniguruma/release/onig.wasm"));
  await oniguruma.loadWASM(wasm.buffer.slice(wasm.byteOffset, wasm.byteOffset + wasm.byteLength));
  const registry = new textmate.Registry({
    onigLib: Promise.resolve({
      createOnigScanner: (patterns) => new oniguruma.OnigScanner(patterns),
      createOnigString: (text) => new oniguruma.OnigString(text),
    }),
    loadGrammar: async (scopeName) =>
      scopeName === "source.step"
        ? textmate.parseRawGrammar(readFileSync(grammarPath, "utf8"), grammarPath)
        : null,
  });
  return registry.loadGrammar("source.step");
}

// stepc reads `\r\n` and a lone `\r` as line breaks (stepc.sources.spec_text).
function tokenizeText(grammar, text) {
  const tokens = [];
  let state = textmate.INITIAL;
  text.split(/\r\n|\r|\n/).forEach((line, index) => {
    const result = grammar.tokenizeLine(line, state);
    for (const token of result.tokens) {
      const end = Math.min(token.endIndex, line.length);
      if (end > token.startIndex) {
        tokens.push({
          line: index + 1,
          start: token.startIndex + 1,
          end: end + 1,
          text: line.slice(token.startIndex, end),
          scopes: token.scopes,
        });
      }
    }
    state = result.ruleStack;
  });
  return tokens;
}

const grammar = await loadGrammar();
const output = {};
for (const file of process.argv.slice(2)) {
  output[file] = tokenizeText(grammar, readFileSync(file, "utf8"));
}
process.stdout.write(JSON.stringify(output));
