'use strict';
/*
 * Errors of the Node.js runtime client and the documents that describe them.
 *
 * Lambda's Node runtime names its own failures `Runtime.<Reason>` and reports every error
 * as `{"errorType", "errorMessage", "trace"}`, where `trace` is the stack split into lines.
 * Log lines carry a different, richer rendering (enumerable properties and `code` included),
 * so a function's logs look the same here as on AWS.
 */

const util = require('util');

class ImportModuleError extends Error {}
class HandlerNotFound extends Error {}
class MalformedHandlerName extends Error {}
class UserCodeSyntaxError extends Error {
  constructor(original) {
    super(String(original));
    // The original stack names the file and line that failed to parse.
    if (original && typeof original.stack === 'string') this.stack = original.stack;
  }
}
class MalformedStreamingHandler extends Error {}
class InvalidStreamingOperation extends Error {}
class JSONStringifyError extends Error {}
class NodeJsExit extends Error {}
class UnhandledPromiseRejection extends Error {
  constructor(reason, promise) {
    super(reason);
    this.reason = reason;
    this.promise = promise;
  }
}

for (const cls of [
  ImportModuleError,
  HandlerNotFound,
  MalformedHandlerName,
  UserCodeSyntaxError,
  MalformedStreamingHandler,
  InvalidStreamingOperation,
  JSONStringifyError,
  NodeJsExit,
  UnhandledPromiseRejection,
]) {
  cls.prototype.name = `Runtime.${cls.name}`;
}

function looksLikeError(value) {
  return (
    value !== null &&
    typeof value === 'object' &&
    typeof value.name === 'string' &&
    typeof value.message === 'string' &&
    typeof value.stack === 'string'
  );
}

/** The body posted to `/error` and `/init/error` for anything a function threw or passed. */
function errorDocument(error) {
  try {
    if (util.types.isNativeError(error) || looksLikeError(error)) {
      if (typeof error.stack !== 'string') throw new TypeError('stack is not a string');
      return {
        errorType: error.name,
        errorMessage: error.message,
        trace: error.stack.split('\n'),
      };
    }
    return { errorType: typeof error, errorMessage: String(error), trace: [] };
  } catch {
    return {
      errorType: 'handled',
      errorMessage:
        'the function reported an error whose name, message or stack could not be read',
      trace: [],
    };
  }
}

function withEnumerableProperties(value) {
  if (!(value instanceof Error)) return value;
  const out = Object.assign(
    { errorType: value.name, errorMessage: value.message, code: value.code },
    value,
  );
  if (typeof value.stack === 'string') out.stack = value.stack.split('\n');
  return out;
}

/** An error as text log lines show it: a tab, then JSON with the stack as an array. */
function formatError(error) {
  try {
    return '\t' + JSON.stringify(error, (_key, value) => withEnumerableProperties(value));
  } catch {
    return '\t' + JSON.stringify(errorDocument(error));
  }
}

function intoError(value) {
  return value instanceof Error ? value : new Error(value);
}

const FRAME = /^\s*at (?:(.*?) \()?(.*?):(\d+):\d+\)?$/;
const CAUSE_LIMIT = 32 * 1024;

/**
 * The `Lambda-Runtime-Function-XRay-Error-Cause` header value, or undefined when the
 * cause would not fit comfortably in a request head. Non-ASCII characters are escaped
 * because HTTP header values must be Latin-1.
 */
function xrayCause(error, document) {
  const stack = [];
  const paths = new Set();
  for (const line of document.trace || []) {
    const match = FRAME.exec(line);
    if (!match) continue;
    const label = match[1] || 'anonymous';
    const file = match[2].startsWith('file://') ? match[2].slice(7) : match[2];
    stack.push({ path: file, line: Number(match[3]), label });
    paths.add(file);
  }
  const cause = JSON.stringify({
    working_directory: process.cwd(),
    exceptions: [{ type: document.errorType, message: document.errorMessage, stack }],
    paths: [...paths],
  }).replace(/[\u007f-\uffff]/g, (c) => '\\u' + c.charCodeAt(0).toString(16).padStart(4, '0'));
  return cause.length < CAUSE_LIMIT ? cause : undefined;
}

module.exports = {
  HandlerNotFound,
  ImportModuleError,
  InvalidStreamingOperation,
  JSONStringifyError,
  MalformedHandlerName,
  MalformedStreamingHandler,
  NodeJsExit,
  UnhandledPromiseRejection,
  UserCodeSyntaxError,
  errorDocument,
  formatError,
  intoError,
  xrayCause,
};
