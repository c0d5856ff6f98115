// Shared by the conformance scripts: load the pinned SDK and keep its logs off stdout.
'use strict';

const lark = require('@larksuiteoapi/node-sdk');

// stdout carries one JSON object per line for the test; everything the SDK logs goes to stderr.
const logger = {
  error: (...msg) => console.error('[error]', ...msg),
  warn: (...msg) => console.error('[warn]', ...msg),
  info: (...msg) => console.error('[info]', ...msg),
  debug: (...msg) => console.error('[debug]', ...msg),
  trace: (...msg) => console.error('[trace]', ...msg),
};

function emit(value) {
  process.stdout.write(JSON.stringify(value) + '\n');
}

function fail(error) {
  console.error(error && error.stack ? error.stack : error);
  process.exit(1);
}

module.exports = { lark, logger, emit, fail };
