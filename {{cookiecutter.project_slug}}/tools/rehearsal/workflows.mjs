// GitHub's own workflow parser and expression evaluator, served to the rehearsal in
// tests/workflows/rehearsal over stdin/stdout, one JSON request per line:
//
//   {"op": "load", "file": "<workflow.yml>"}
//       the workflow as GitHub's parser reads it: the token tree (an expression is
//       {"$expr": "..."}; a string with embedded expressions is already its format(...) call),
//       each job's `if` and its steps' `if` as GitHub's converter writes them (a condition
//       without a status function becomes `success() && (...)`), and the parser's errors
//   {"op": "eval", "expr": "...", "contexts": {...}, "status": {...}, "workspace": "..."}
//       the value of an expression; success(), failure(), cancelled() and always() return
//       what `status` says (the runner decides those from job and step results)
//   {"op": "match", "patterns": [...], "values": [...]}
//       whether any value passes a branches/paths filter (later patterns win; `!` excludes)
//
// Start it with `node --import ./json-modules.mjs workflows.mjs`.
import { createHash } from "node:crypto";
import { lstatSync, readFileSync, readdirSync } from "node:fs";
import { join, relative } from "node:path";
import { createInterface } from "node:readline";

import { Evaluator, Lexer, Parser, data } from "@actions/expressions";
import { falsy } from "@actions/expressions/result";
import { NoOperationTraceWriter, convertWorkflowTemplate, parseWorkflow } from "@actions/workflow-parser";
import picomatch from "picomatch";

const TOKEN = { String: 0, Sequence: 1, Mapping: 2, BasicExpression: 3, InsertExpression: 4, Boolean: 5, Number: 6, Null: 7 };

function serialize(token) {
  if (token === undefined || token === null) return null;
  switch (token.templateTokenType) {
    case TOKEN.String:
    case TOKEN.Boolean:
    case TOKEN.Number:
      return token.value;
    case TOKEN.Null:
      return null;
    case TOKEN.BasicExpression:
      return { $expr: token.expression };
    case TOKEN.Sequence: {
      const items = [];
      for (let i = 0; i < token.count; i++) items.push(serialize(token.get(i)));
      return items;
    }
    case TOKEN.Mapping: {
      const mapping = {};
      for (let i = 0; i < token.count; i++) {
        const pair = token.get(i);
        if (pair.key.templateTokenType !== TOKEN.String) throw new Error("expression keys are not supported");
        mapping[pair.key.value] = serialize(pair.value);
      }
      return mapping;
    }
    default:
      throw new Error(`unsupported token type ${token.templateTokenType}`);
  }
}

async function load(file) {
  const parsed = parseWorkflow({ name: file, content: readFileSync(file, "utf8") }, new NoOperationTraceWriter());
  const errors = parsed.context.errors.getErrors().map((e) => e.message);
  if (errors.length || !parsed.value) return { errors };
  const template = await convertWorkflowTemplate(parsed.context, parsed.value);
  const jobs = {};
  for (const job of template.jobs) {
    jobs[job.id.value] = {
      if: job.if.expression,
      needs: (job.needs || []).map((n) => n.value),
      steps: (job.steps || []).map((s) => ({ id: s.id, if: s.if ? s.if.expression : "success()" })),
    };
  }
  const converted = (template.errors || []).map((e) => e.Message);
  return { errors: converted, tree: serialize(parsed.value), jobs };
}

// The runner's hashFiles(): SHA-256 of each matching file's SHA-256, in path order; '' if none.
function hashFiles(workspace, patterns) {
  const included = patterns.filter((p) => !p.startsWith("!"));
  const excluded = patterns.filter((p) => p.startsWith("!")).map((p) => p.slice(1));
  const isIncluded = picomatch(included, { dot: true });
  const isExcluded = excluded.length ? picomatch(excluded, { dot: true }) : () => false;
  const files = [];
  const walk = (dir) => {
    for (const name of readdirSync(dir).sort()) {
      if (name === ".git") continue;
      const path = join(dir, name);
      const entry = lstatSync(path);
      if (entry.isSymbolicLink()) continue; // the rehearsal's .venv; the runner's workspace has none
      if (entry.isDirectory()) walk(path);
      else {
        const rel = relative(workspace, path);
        if (isIncluded(rel) && !isExcluded(rel)) files.push(path);
      }
    }
  };
  walk(workspace);
  if (!files.length) return "";
  const outer = createHash("sha256");
  for (const path of files) outer.update(createHash("sha256").update(readFileSync(path)).digest());
  return outer.digest("hex");
}

function evaluate({ expr, contexts, status, workspace }) {
  const statusFunction = (name) => ({
    name,
    minArgs: 0,
    maxArgs: 0,
    call: () => new data.BooleanData(Boolean(status && status[name])),
  });
  const functions = new Map(["success", "failure", "cancelled", "always"].map((n) => [n, statusFunction(n)]));
  functions.set("hashfiles", {
    name: "hashFiles",
    minArgs: 1,
    maxArgs: 255,
    call: (...args) => new data.StringData(hashFiles(workspace, args.map((a) => a.coerceString()))),
  });
  const lexed = new Lexer(expr).lex();
  const names = Object.keys(contexts);
  const parser = new Parser(lexed.tokens, names, [...functions.values()].map(({ name, minArgs, maxArgs }) => ({ name, minArgs, maxArgs })));
  const tree = parser.parse();
  const context = JSON.parse(JSON.stringify(contexts), data.reviver);
  const result = new Evaluator(tree, context, functions).evaluate();
  return { value: JSON.parse(JSON.stringify(result, data.replacer)), truthy: !falsy(result) };
}

// GitHub's filter rule: a value is in when the last pattern that matches it is not negated.
function match({ patterns, values }) {
  const matchers = patterns.map((p) => ({
    negated: p.startsWith("!"),
    test: picomatch(p.startsWith("!") ? p.slice(1) : p, { dot: true }),
  }));
  return {
    value: values.some((value) => {
      let included = false;
      for (const m of matchers) if (m.test(value)) included = !m.negated;
      return included;
    }),
  };
}

const operations = { load: ({ file }) => load(file), eval: evaluate, match };

for await (const line of createInterface({ input: process.stdin })) {
  let reply;
  try {
    const request = JSON.parse(line);
    reply = { ok: true, ...(await operations[request.op](request)) };
  } catch (error) {
    reply = { ok: false, error: String(error && error.message ? error.message : error) };
  }
  process.stdout.write(JSON.stringify(reply) + "\n");
}
