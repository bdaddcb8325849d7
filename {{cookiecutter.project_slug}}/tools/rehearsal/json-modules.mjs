// @actions/workflow-parser imports its JSON schema without an import attribute, which bundlers
// accept and Node's ES module loader refuses. This hook adds the attribute for .json files only.
import { register } from "node:module";

export async function load(url, context, nextLoad) {
  if (url.endsWith(".json")) {
    const attributes = { ...(context.importAttributes ?? {}), type: "json" };
    return nextLoad(url, { ...context, importAttributes: attributes, importAssertions: attributes });
  }
  return nextLoad(url, context);
}

if (!import.meta.url.includes("?hook")) {
  register(`${import.meta.url}?hook`);
}
