'use strict';
/*
 * HTTP/1.1 client for the Runtime API (2018-06-01).
 *
 * One keep-alive agent carries every call, so an environment normally uses a single TCP
 * connection for its whole life. Idle keep-alive sockets are unreferenced by Node, which
 * matters: "the event loop is empty" is how callback handlers finish, and the runtime's
 * own connection must not count. `next` is a long poll and has no timeout. A request that
 * fails on a reused connection before any response arrived is retried once on a fresh
 * one, since the server cannot have acted on it.
 */

const http = require('http');

const API = '/2018-06-01/runtime';
const USER_AGENT = `aws-lambda-nodejs/${process.version}-lambdalite`;

class RuntimeApiError extends Error {}

function parseAddress(address) {
  const match = /^\[?([^\]]*?)\]?:(\d+)$/.exec(address || '');
  if (!match) throw new RuntimeApiError(`AWS_LAMBDA_RUNTIME_API must be host:port, got '${address}'`);
  return { host: match[1] || '127.0.0.1', port: Number(match[2]) };
}

function headerSafe(value) {
  // Header values are Latin-1 without control characters; anything else is replaced.
  return String(value).replace(/[^\t\x20-\x7e\x80-\xff]/g, '?');
}

class RuntimeClient {
  constructor(address) {
    const { host, port } = parseAddress(address);
    this.host = host;
    this.port = port;
    this.agent = new http.Agent({ keepAlive: true });
  }

  /** Start a request; `headers` are added to the usual ones. */
  open(method, path, headers) {
    return http.request({
      host: this.host,
      port: this.port,
      method,
      path,
      agent: this.agent,
      headers: { 'User-Agent': USER_AGENT, ...headers },
    });
  }

  /** A whole request and response: resolves with `{status, headers, body}` (body a Buffer). */
  request(method, path, headers = {}, body = undefined) {
    const data = body === undefined ? undefined : Buffer.from(body);
    if (data !== undefined) headers = { ...headers, 'Content-Length': String(data.length) };
    const attempt = (mayRetry) =>
      new Promise((resolve, reject) => {
        const req = this.open(method, path, headers);
        let answered = false;
        req.on('response', (res) => {
          answered = true;
          const chunks = [];
          res.on('data', (chunk) => chunks.push(chunk));
          res.on('end', () => {
            resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks) });
          });
          res.on('error', reject);
        });
        req.on('error', (err) => {
          if (mayRetry && !answered && req.reusedSocket) resolve(attempt(false));
          else reject(err);
        });
        req.end(data);
      });
    return attempt(true);
  }

  async next() {
    const res = await this.request('GET', `${API}/invocation/next`);
    if (res.status !== 200) {
      throw new RuntimeApiError(`next answered HTTP ${res.status}: ${res.body.toString().slice(0, 200)}`);
    }
    return res;
  }

  respond(requestId, body, contentType) {
    const path = `${API}/invocation/${encodeURIComponent(requestId)}/response`;
    return this.request('POST', path, { 'Content-Type': contentType }, body).then(checked);
  }

  fail(requestId, document, cause) {
    const path = `${API}/invocation/${encodeURIComponent(requestId)}/error`;
    const headers = { 'Content-Type': 'application/json' };
    if (cause !== undefined) headers['Lambda-Runtime-Function-XRay-Error-Cause'] = cause;
    return this.request('POST', path, headers, JSON.stringify(document)).then(checked);
  }

  failInit(document) {
    const headers = {
      'Content-Type': 'application/json',
      'Lambda-Runtime-Function-Error-Type': headerSafe(document.errorType),
    };
    return this.request('POST', `${API}/init/error`, headers, JSON.stringify(document));
  }
}

/** 4xx (a response over the size limit, say) fails one invocation; 5xx ends the runtime. */
function checked(res) {
  if (res.status >= 500) {
    throw new RuntimeApiError(`Runtime API answered HTTP ${res.status}: ${res.body.toString().slice(0, 200)}`);
  }
  return res;
}

module.exports = { API, RuntimeApiError, RuntimeClient, checked, headerSafe };
