'use strict';
/*
 * Resolves a handler setting such as `index.handler`, `src/app.api.get` or `main.default`
 * to a function, the way Lambda's Node runtime does.
 *
 * The part after the last '/' splits at its first '.': the module name, then a property
 * path into the module. The module is looked up relative to the task root, in this order:
 * the exact name (a file without extension or a directory), `<name>.js` loaded as CommonJS
 * unless the nearest package.json says `"type": "module"` (then as an ES module),
 * `<name>.mjs`, `<name>.cjs`, and finally Node's own resolution from the task root
 * (node_modules included). Failures become the runtime's typed init errors.
 */

const fs = require('fs');
const path = require('path');
const {
  HandlerNotFound,
  ImportModuleError,
  MalformedHandlerName,
  UserCodeSyntaxError,
} = require('./errors.js');

const MODULE_AND_PATH = /^([^.]*)\.(.*)$/;

function isModulePackage(folder) {
  for (;;) {
    if (folder.endsWith(`${path.sep}node_modules`)) return false;
    const manifest = path.join(folder, 'package.json');
    if (fs.existsSync(manifest)) {
      try {
        const parsed = JSON.parse(fs.readFileSync(manifest, 'utf8'));
        return Boolean(parsed) && parsed.type === 'module';
      } catch (err) {
        console.warn(`${manifest} cannot be read; it is ignored when telling ES modules.`, err);
        return false;
      }
    }
    const parent = path.dirname(folder);
    if (parent === folder) return false;
    folder = parent;
  }
}

async function importFile(file) {
  const { pathToFileURL } = require('url');
  return import(pathToFileURL(file).href);
}

async function loadModule(taskRoot, moduleRoot, name) {
  const base = path.resolve(taskRoot, moduleRoot, name);
  if (fs.existsSync(base)) return require(base);
  const esm = isModulePackage(path.dirname(base));
  if (fs.existsSync(`${base}.js`)) {
    return esm ? importFile(`${base}.js`) : require(`${base}.js`);
  }
  if (fs.existsSync(`${base}.mjs`)) return importFile(`${base}.mjs`);
  if (fs.existsSync(`${base}.cjs`)) return require(`${base}.cjs`);
  const roots = [taskRoot, path.resolve(taskRoot, moduleRoot)];
  return require(require.resolve(name, { paths: roots }));
}

/** The handler function named by `spec`, or a `Runtime.*` error explaining why not. */
async function loadHandler(taskRoot, spec) {
  if (spec.includes('..')) {
    throw new MalformedHandlerName(
      `'${spec}' is not a valid handler name: paths may not leave the task root ('..').`,
    );
  }
  const leaf = path.basename(spec);
  const moduleRoot = spec.slice(0, spec.length - leaf.length);
  const match = MODULE_AND_PATH.exec(leaf);
  if (!match) throw new MalformedHandlerName('Bad handler');
  let userModule;
  try {
    userModule = await loadModule(taskRoot, moduleRoot, match[1]);
  } catch (err) {
    if (err instanceof SyntaxError) throw new UserCodeSyntaxError(err);
    if (err && err.code === 'MODULE_NOT_FOUND') throw new ImportModuleError(err);
    throw err;
  }
  const handler = match[2].split('.').reduce((value, key) => value && value[key], userModule);
  if (!handler) throw new HandlerNotFound(`${spec} is undefined or not exported`);
  if (typeof handler !== 'function') throw new HandlerNotFound(`${spec} is not a function`);
  return handler;
}

module.exports = { loadHandler };
