'use strict';
/*
 * Response streaming: handlers wrapped with `awslambda.streamifyResponse` write their
 * response to a stream instead of returning it.
 *
 * The response is one chunked POST to `/invocation/{id}/response` with
 * `Lambda-Runtime-Function-Response-Mode: streaming`, opened on the first byte so that a
 * handler failing before it has written anything reports an ordinary error to `/error`.
 * A failure after that ends the body with the `Lambda-Runtime-Function-Error-Type` and
 * `Lambda-Runtime-Function-Error-Body` (base64 JSON) trailers. `HttpResponseStream.from`
 * prefixes the body with the HTTP integration prelude: JSON metadata and eight NUL bytes.
 *
 * While the handler may still write, the response's socket does not hold the event loop
 * open, so "nothing left to run and the stream not ended" is noticed (and reported) rather
 * than waited out until the timeout; ending or failing the stream holds it again until the
 * platform has answered.
 *
 * Only loaded when a function streams (or reads `awslambda.HttpResponseStream`), so the
 * buffered path pays nothing for it.
 */

const { Writable } = require('stream');
const { API, checked, headerSafe } = require('./client.js');
const { InvalidStreamingOperation, errorDocument, xrayCause } = require('./errors.js');

const HTTP_INTEGRATION = 'application/vnd.awslambda.http-integration-response';
const PRELUDE_DELIMITER_BYTES = 8;

function asChunk(chunk) {
  return typeof chunk === 'string' || chunk instanceof Uint8Array ? chunk : JSON.stringify(chunk);
}

function trailers(document) {
  return {
    'Lambda-Runtime-Function-Error-Type': headerSafe(document.errorType),
    'Lambda-Runtime-Function-Error-Body': Buffer.from(JSON.stringify(document)).toString('base64'),
  };
}

class ResponseStream extends Writable {
  constructor(client, requestId, highWaterMark) {
    super(highWaterMark === undefined ? {} : { highWaterMark });
    this._client = client;
    this._requestId = requestId;
    this._contentType = 'application/octet-stream';
    this._req = null;
    this._started = false;
    this._ended = false; // the platform has answered or the invocation was reported otherwise
    this._failure = null;
    this._holding = false; // the socket keeps the event loop alive again
    this._onBeforeFirstWrite = undefined;
    /** Settles when the platform has answered the response POST. */
    this.done = new Promise((resolve, reject) => {
      this._resolve = resolve;
      this._reject = reject;
    });
    this.done.catch(() => {});
    // Failures surface through the handler's promise; an 'error' event must not crash.
    this.on('error', () => {});
  }

  setContentType(contentType) {
    if (this._started) throw new InvalidStreamingOperation('Cannot set content-type, too late.');
    this._contentType = String(contentType);
  }

  write(chunk, encoding, callback) {
    this._started = true;
    return super.write(asChunk(chunk), encoding, callback);
  }

  end(chunk, encoding, callback) {
    if (chunk === null || chunk === undefined || typeof chunk === 'function') {
      return super.end(chunk, encoding, callback);
    }
    this._started = true;
    return super.end(asChunk(chunk), encoding, callback);
  }

  _write(chunk, _encoding, callback) {
    if (this._ended) {
      callback(new InvalidStreamingOperation('The invocation has already been answered.'));
      return;
    }
    this._open().write(chunk, callback);
  }

  _final(callback) {
    if (this._ended) {
      callback();
      return;
    }
    const req = this._open();
    this._hold();
    if (this._failure !== null) req.addTrailers(trailers(this._failure));
    req.end(() => callback());
  }

  _destroy(error, callback) {
    const req = this._req;
    if (req !== null && !req.writableEnded && !req.destroyed) {
      this._hold();
      if (error) req.addTrailers(trailers(errorDocument(error)));
      req.end();
    }
    callback(error);
  }

  _open() {
    if (this._req !== null) return this._req;
    this._started = true;
    const path = `${API}/invocation/${encodeURIComponent(this._requestId)}/response`;
    const req = this._client.open('POST', path, {
      'Lambda-Runtime-Function-Response-Mode': 'streaming',
      'Transfer-Encoding': 'chunked',
      Trailer: 'Lambda-Runtime-Function-Error-Type, Lambda-Runtime-Function-Error-Body',
      'Content-Type': headerSafe(this._contentType),
    });
    this._req = req;
    req.on('socket', (socket) => {
      if (!this._holding) socket.unref();
    });
    req.on('response', (res) => {
      const chunks = [];
      res.on('data', (chunk) => chunks.push(chunk));
      res.on('end', () => {
        this._ended = true;
        try {
          this._resolve(checked({ status: res.statusCode, body: Buffer.concat(chunks) }));
        } catch (err) {
          this._reject(err);
        }
      });
    });
    req.on('error', (err) => {
      this._ended = true;
      this._reject(err);
      this.destroy(err);
    });
    if (typeof this._onBeforeFirstWrite === 'function') {
      this._onBeforeFirstWrite((chunk) => req.write(asChunk(chunk)));
    }
    return req;
  }

  _hold() {
    this._holding = true;
    const socket = this._req !== null ? this._req.socket : null;
    if (socket) socket.ref();
  }

  /** Report `error` for this invocation; settles once the platform has it. */
  fail(error) {
    const document = errorDocument(error);
    if (this._req === null) {
      this._ended = true;
      return this._client.fail(this._requestId, document, xrayCause(error, document));
    }
    this._hold();
    if (!this.writableEnded && !this.destroyed) {
      // Through the stream, so data written before the failure still goes out first.
      this._failure = document;
      super.end();
    } else if (!this._req.writableEnded && !this._req.destroyed) {
      this._req.addTrailers(trailers(document));
      this._req.end();
    }
    return this.done;
  }
}

const HttpResponseStream = {
  /** Turn `stream` into an HTTP integration response with `prelude` as status and headers. */
  from(stream, prelude) {
    stream.setContentType(HTTP_INTEGRATION);
    const metadata = JSON.stringify(prelude);
    stream._onBeforeFirstWrite = (write) => {
      write(metadata);
      write(new Uint8Array(PRELUDE_DELIMITER_BYTES));
    };
    return stream;
  },
};

function isPromise(value) {
  return value !== null && value !== undefined && typeof value.then === 'function';
}

/**
 * Run one streaming invocation. The invocation is over when the handler's promise has
 * settled and the response has been delivered; if the event loop empties first, the
 * stream is reported as unfinished rather than left hanging until the timeout.
 */
function runStreaming(runtime, invocation, body) {
  let waits = true;
  const stream = new ResponseStream(runtime.client, invocation.id, runtime.highWaterMark);
  const context = {
    get callbackWaitsForEmptyEventLoop() {
      return waits;
    },
    set callbackWaitsForEmptyEventLoop(value) {
      waits = value;
    },
  };
  let over = false;
  const conclude = (error) => {
    if (over) return;
    over = true;
    runtime.onEmptyLoop = null;
    invocation.answered = true;
    let sent = stream.done;
    if (error !== undefined) {
      runtime.logError('Invoke Error', error);
      sent = stream.fail(error);
    }
    sent.then(
      () => {
        if (!waits) runtime.finish(invocation);
        else runtime.onEmptyLoop = () => setImmediate(() => runtime.finish(invocation));
      },
      (err) => runtime.fatal(err),
    );
  };
  invocation.abort = (error) => {
    over = true;
    runtime.onEmptyLoop = null;
    invocation.answered = true;
    return stream.fail(error);
  };
  runtime.onEmptyLoop = () =>
    conclude(stream.writableFinished ? undefined : 'Response stream is not finished.');
  let pending;
  try {
    pending = runtime.handler(JSON.parse(body), stream, runtime.context(invocation, context));
  } catch (err) {
    conclude(err);
    return;
  }
  if (!isPromise(pending)) {
    conclude('Streaming does not support non-async handlers.');
    return;
  }
  pending.then(
    (result) => {
      if (result !== undefined) console.warn('Streaming handlers ignore return values.');
      stream.done.then(() => conclude(), (err) => runtime.fatal(err));
    },
    (err) => conclude(err === undefined ? 'handled' : err),
  );
}

module.exports = { HttpResponseStream, ResponseStream, runStreaming };
