'use strict';
/*
 * Runtime client for Node.js functions: the process that runs inside an execution
 * environment.
 *
 * The platform starts it as `node bootstrap.js` with the working directory set to
 * LAMBDA_TASK_ROOT and the Lambda environment variables in place. It loads the configured
 * handler, then loops on the Runtime API (2018-06-01): fetch the next event, call the
 * handler, post the result or the error. Handler resolution, the context object, callback
 * semantics, error documents and log lines follow AWS's managed Node.js runtime, so a
 * function behaves the same here and on AWS.
 *
 * Why it looks the way it does:
 *
 * - No dependencies, and the same code runs on every Node.js major the platform offers (18
 *   and later). Modules are CommonJS files next to this one; `streaming.js` only loads for
 *   functions that stream, so a plain cold start compiles as little as possible.
 * - A callback handler's response goes out when the event loop is empty (unless
 *   `context.callbackWaitsForEmptyEventLoop` is false). Node signals that with
 *   'beforeExit'; the runtime keeps one pending action for it (`onEmptyLoop`), and its own
 *   idle connection never holds the loop open.
 * - An uncaught exception or an unhandled rejection is reported as the error of the
 *   invocation in progress (or of INIT), and then the process exits with 129 or 128,
 *   as AWS's runtime does; the platform then starts a fresh environment.
 * - Modules that live in layers are found through NODE_PATH, which is filled in here
 *   (when the platform left it unset) the way AWS's runtime sets it.
 */

const path = require('path');
const { RuntimeClient } = require('./client.js');
const { blockingStdio, installConsole, setInvocation } = require('./console.js');
const {
  JSONStringifyError,
  MalformedStreamingHandler,
  NodeJsExit,
  UnhandledPromiseRejection,
  errorDocument,
  xrayCause,
} = require('./errors.js');
const { loadHandler } = require('./loader.js');

const STREAMING = Symbol.for('aws.lambda.runtime.handler.streaming');
const HIGH_WATER_MARK = Symbol.for('aws.lambda.runtime.handler.streaming.highWaterMark');

function parseJson(text, name) {
  if (text === undefined) return undefined;
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new Error(`Cannot parse ${name} as json: ${err.toString()}`);
  }
}

function isPromise(value) {
  return value !== null && value !== undefined && typeof value.then === 'function';
}

class Runtime {
  constructor(client, logError) {
    this.client = client;
    this.logError = logError;
    this.handler = null;
    this.streaming = false;
    this.highWaterMark = undefined;
    this.isAsync = false;
    /** The invocation being handled: {id, headers, answered, abort}. */
    this.current = null;
    /** What to do when the event loop runs out of work ('beforeExit'). */
    this.onEmptyLoop = null;
    this.crashing = false;
    /** INIT ends with the first `next`; until then failures are init errors. */
    this.polled = false;
  }

  start(handler) {
    const mode = handler[STREAMING];
    if (mode !== undefined && mode !== null && mode !== false && mode !== 'response') {
      throw new MalformedStreamingHandler('Only response streaming is supported.');
    }
    this.streaming = mode === 'response';
    const mark = parseInt(handler[HIGH_WATER_MARK], 10);
    this.highWaterMark = Number.isNaN(mark) ? undefined : mark;
    this.isAsync = handler.constructor?.name === 'AsyncFunction';
    this.handler = handler;
    this.scheduleNext();
  }

  scheduleNext() {
    setImmediate(() => this.next().catch((err) => this.fatal(err)));
  }

  loopEmpty() {
    const action = this.onEmptyLoop;
    this.onEmptyLoop = null;
    if (action !== null) action();
  }

  async next() {
    this.polled = true;
    const { headers, body } = await this.client.next();
    const id = headers['lambda-runtime-aws-request-id'];
    if (!id) throw new Error('next answered without Lambda-Runtime-Aws-Request-Id');
    const invocation = { id, headers, answered: false, abort: null };
    this.current = invocation;
    setInvocation(id, headers['lambda-runtime-aws-tenant-id']);
    if (this.streaming) {
      require('./streaming.js').runStreaming(this, invocation, body.toString('utf8'));
    } else {
      this.invoke(invocation, body.toString('utf8'));
    }
  }

  /** Fill `target` with the invocation's context fields (it keeps its own members). */
  context(invocation, target) {
    const env = process.env;
    const headers = invocation.headers;
    const trace = headers['lambda-runtime-trace-id'];
    if (trace) env._X_AMZN_TRACE_ID = trace;
    else delete env._X_AMZN_TRACE_ID;
    const deadline = Number(headers['lambda-runtime-deadline-ms']);
    return Object.assign(target, {
      functionVersion: env.AWS_LAMBDA_FUNCTION_VERSION,
      functionName: env.AWS_LAMBDA_FUNCTION_NAME,
      memoryLimitInMB: env.AWS_LAMBDA_FUNCTION_MEMORY_SIZE,
      logGroupName: env.AWS_LAMBDA_LOG_GROUP_NAME,
      logStreamName: env.AWS_LAMBDA_LOG_STREAM_NAME,
      clientContext: parseJson(headers['lambda-runtime-client-context'], 'ClientContext'),
      identity: parseJson(headers['lambda-runtime-cognito-identity'], 'CognitoIdentity'),
      invokedFunctionArn: headers['lambda-runtime-invoked-function-arn'],
      awsRequestId: invocation.id,
      tenantId: headers['lambda-runtime-aws-tenant-id'],
      getRemainingTimeInMillis: () => deadline - Date.now(),
    });
  }

  /** A buffered invocation: the handler returns (or calls back with) the whole result. */
  invoke(invocation, body) {
    let waits = true;
    let settled = false;
    const respond = (result) => {
      if (invocation.answered) {
        console.error('Invocation has already been reported as done. Cannot call complete more than once per invocation.');
        return;
      }
      this.respond(invocation, result);
    };
    const fail = (error) => this.failInvocation(invocation, error);
    const done = (error, result) => {
      this.onEmptyLoop = null;
      if (error !== undefined && error !== null) fail(error);
      else respond(result);
    };
    const callback = (error, result) => {
      this.onEmptyLoop = null;
      if (error !== undefined && error !== null) fail(error);
      else if (!waits) respond(result);
      else this.onEmptyLoop = () => setImmediate(() => respond(result));
    };
    // Whichever of the callback, succeed, fail, done or the returned promise comes first wins.
    const first = (fn) => (...args) => {
      if (settled) return;
      settled = true;
      fn(...args);
    };
    const context = {
      get callbackWaitsForEmptyEventLoop() {
        return waits;
      },
      set callbackWaitsForEmptyEventLoop(value) {
        waits = value;
      },
      succeed: first((result) => done(null, result)),
      fail: first((error) => done(error === undefined || error === null ? 'handled' : error)),
      done: first(done),
    };
    const handlerCallback = first(callback);
    invocation.abort = (error) => {
      settled = true;
      this.onEmptyLoop = null;
      if (invocation.answered) return Promise.resolve();
      invocation.answered = true;
      const document = errorDocument(error);
      return this.client.fail(invocation.id, document, xrayCause(error, document));
    };
    // The handler neither returned a settled promise nor called back, and nothing is left
    // to run: an async handler failed to settle its promise, a plain one returns null.
    this.onEmptyLoop = () => {
      settled = true;
      if (this.isAsync) {
        fail(new NodeJsExit('The handler returned a Promise that was never settled'));
      } else {
        this.respond(invocation, null);
      }
    };
    try {
      const event = JSON.parse(body);
      const result = this.handler(event, this.context(invocation, context), handlerCallback);
      if (isPromise(result)) result.then(context.succeed, context.fail);
    } catch (err) {
      handlerCallback(err);
    }
  }

  respond(invocation, result) {
    let body;
    try {
      body = JSON.stringify(result === undefined ? null : result);
    } catch {
      this.failInvocation(invocation, new JSONStringifyError('Unable to stringify response body'));
      return;
    }
    invocation.answered = true;
    this.client.respond(invocation.id, body === undefined ? 'null' : body, 'application/json').then(
      () => this.finish(invocation),
      (err) => this.fatal(err),
    );
  }

  failInvocation(invocation, error) {
    invocation.answered = true;
    this.logError('Invoke Error', error);
    const document = errorDocument(error);
    this.client.fail(invocation.id, document, xrayCause(error, document)).then(
      () => this.finish(invocation),
      (err) => this.fatal(err),
    );
  }

  finish(invocation) {
    if (this.current === invocation) this.current = null;
    this.scheduleNext();
  }

  /** Report an error nothing else caught, then exit (INIT failures, crashes mid-invoke). */
  crash(error, exitCode) {
    if (this.crashing) return;
    this.crashing = true;
    this.onEmptyLoop = null;
    let report = Promise.resolve();
    if (!this.polled) {
      report = this.client.failInit(errorDocument(error));
    } else if (this.current !== null && !this.current.answered && this.current.abort) {
      report = this.current.abort(error);
    }
    report.then(
      () => process.exit(exitCode),
      (err) => {
        process.stderr.write(`Runtime API request failed: ${err && err.message}\n`);
        process.exit(exitCode);
      },
    );
  }

  /** The Runtime API failed or went away: nothing can be reported, so leave. */
  fatal(error) {
    if (this.crashing) return;
    this.crashing = true;
    process.stderr.write(`Runtime API request failed, exiting: ${error && error.message}\n`);
    process.exit(1);
  }
}

function setModulePaths(env) {
  if (env.NODE_PATH) return;
  const major = process.versions.node.split('.')[0];
  const runtimeDir = env.LAMBDA_RUNTIME_DIR || __dirname;
  env.NODE_PATH = [
    `/opt/nodejs/node${major}/node_modules`,
    '/opt/nodejs/node_modules',
    path.join(runtimeDir, 'node_modules'),
    runtimeDir,
    env.LAMBDA_TASK_ROOT || process.cwd(),
  ].join(':');
  const Module = require('module');
  if (typeof Module._initPaths === 'function') Module._initPaths();
}

/**
 * `global.gc`, as functions get it on AWS (which starts node with --expose-gc). The flag
 * makes every start measurably slower, so the function is made on first use instead.
 */
function exposeGc() {
  if (typeof globalThis.gc === 'function') return;
  const define = (value) =>
    Object.defineProperty(globalThis, 'gc', { value, writable: true, configurable: true });
  Object.defineProperty(globalThis, 'gc', {
    configurable: true,
    get() {
      require('v8').setFlagsFromString('--expose-gc');
      const gc = require('vm').runInNewContext('gc');
      define(gc);
      return gc;
    },
    set: define,
  });
}

function installGlobals(env) {
  exposeGc();
  const opt = env.AWS_LAMBDA_NODEJS_NO_GLOBAL_AWSLAMBDA;
  if (opt === '1' || opt === 'true') return;
  globalThis.awslambda = {
    streamifyResponse(handler, options) {
      handler[STREAMING] = 'response';
      if (typeof options?.highWaterMark === 'number') {
        handler[HIGH_WATER_MARK] = parseInt(options.highWaterMark, 10);
      }
      return handler;
    },
    get HttpResponseStream() {
      return require('./streaming.js').HttpResponseStream;
    },
  };
}

async function main() {
  blockingStdio();
  const env = process.env;
  if (!env.AWS_LAMBDA_RUNTIME_API) {
    process.stderr.write('AWS_LAMBDA_RUNTIME_API is not set\n');
    process.exit(1);
  }
  const logError = installConsole(env);
  const runtime = new Runtime(new RuntimeClient(env.AWS_LAMBDA_RUNTIME_API), logError);
  process.on('uncaughtException', (error) => {
    logError('Uncaught Exception', error);
    runtime.crash(error, 129);
  });
  process.on('unhandledRejection', (reason, promise) => {
    const error = new UnhandledPromiseRejection(reason, promise);
    logError('Unhandled Promise Rejection', error);
    runtime.crash(error, 128);
  });
  process.on('beforeExit', () => runtime.loopEmpty());
  setModulePaths(env);
  installGlobals(env);
  const taskRoot = env.LAMBDA_TASK_ROOT || process.cwd();
  const spec = process.argv[2] || env._HANDLER || '';
  let handler;
  try {
    handler = await loadHandler(taskRoot, spec);
    runtime.start(handler);
  } catch (error) {
    logError('Uncaught Exception', error);
    runtime.crash(error, 129);
  }
}

main();
