'use strict';
/*
 * The `console` of a function, formatted the way Lambda's Node runtime formats it.
 *
 * Text lines are `<ISO time>\t<request id>\t<LEVEL>\t<message>`; JSON lines (with
 * `AWS_LAMBDA_LOG_FORMAT=JSON`) are objects with `timestamp`, `level`, `requestId` and
 * `message`. The platform splits output into log events at '\n', so a message that spans
 * lines has them joined with '\r' and stays one event. `AWS_LAMBDA_LOG_LEVEL` silences the
 * levels below it. The request id lives on a well-known global symbol, where libraries
 * written for Lambda look for it.
 */

const util = require('util');
const { formatError, intoError } = require('./errors.js');

const REQUEST_ID = Symbol.for('aws.lambda.runtime.requestId');
const TENANT_ID = Symbol.for('aws.lambda.runtime.tenantId');
const LEVELS = { TRACE: 1, DEBUG: 2, INFO: 3, WARN: 4, ERROR: 5, FATAL: 6 };

function setInvocation(requestId, tenantId) {
  globalThis[REQUEST_ID] = requestId;
  globalThis[TENANT_ID] = tenantId;
}

function textLine(level, message, params) {
  const text = util.format(message, ...params);
  return `${new Date().toISOString()}\t${globalThis[REQUEST_ID]}\t${level}\t${text}`;
}

function errorFields(error) {
  return {
    errorType: error?.constructor?.name ?? 'UnknownError',
    errorMessage: error.message,
    stackTrace: typeof error.stack === 'string' ? error.stack.split('\n') : error.stack,
  };
}

function errorReplacer(_key, value) {
  return value instanceof Error ? Object.assign(errorFields(value), value) : value;
}

function jsonLine(level, message, params) {
  const record = {
    timestamp: new Date().toISOString(),
    level,
    requestId: globalThis[REQUEST_ID],
  };
  if (globalThis[TENANT_ID]) record.tenantId = globalThis[TENANT_ID];
  if (params.length === 0) {
    record.message = message;
    try {
      return JSON.stringify(record, errorReplacer);
    } catch {
      record.message = util.format(message);
      return JSON.stringify(record);
    }
  }
  record.message = util.format(message, ...params);
  const error = params.find((param) => param instanceof Error);
  if (error !== undefined) {
    const fields = errorFields(error);
    if (!Array.isArray(fields.stackTrace)) fields.stackTrace = [];
    Object.assign(record, fields);
  }
  return JSON.stringify(record);
}

/**
 * Replace the console methods and return `logError(label, error)`, the runtime's own way of
 * reporting failures ("Invoke Error", "Uncaught Exception", ...).
 */
function installConsole(env) {
  const json = (env.AWS_LAMBDA_LOG_FORMAT || '').toUpperCase() === 'JSON';
  const minimum = LEVELS[(env.AWS_LAMBDA_LOG_LEVEL || '').toUpperCase()] || LEVELS.TRACE;
  const render = json ? jsonLine : textLine;
  const stdout = process.stdout;
  const method = (level) => {
    if (LEVELS[level] < minimum) return () => {};
    return (message, ...params) => {
      stdout.write(render(level, message, params).replace(/\n/g, '\r') + '\n');
    };
  };
  console.trace = method('TRACE');
  console.debug = method('DEBUG');
  console.info = method('INFO');
  console.log = console.info;
  console.warn = method('WARN');
  console.error = method('ERROR');
  console.fatal = method('FATAL');
  if (json) return (_label, error) => console.error(intoError(error));
  return (label, error) => console.error(label, formatError(intoError(error)));
}

/**
 * Make writes to stdout and stderr synchronous, as they are for a file. Log lines must reach
 * the platform before the response that ends the invocation, and before `process.exit`.
 */
function blockingStdio() {
  for (const stream of [process.stdout, process.stderr]) {
    const handle = stream._handle;
    if (handle && typeof handle.setBlocking === 'function') handle.setBlocking(true);
  }
}

module.exports = { blockingStdio, installConsole, setInvocation };
