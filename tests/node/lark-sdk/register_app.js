// node register_app.js SANDBOX_URL [DOMAIN [LARK_DOMAIN]]
// The SDK's registerApp against the sandbox. The SDK always speaks https to a bare host name
// (`https://${domain}`), so its own HTTP instance is pointed at the sandbox: a request for
// https://<host>/<path> goes to SANDBOX_URL/_hosts/<host>/<path>, which the sandbox serves as
// <host>. Nothing else in the flow is touched.
// Prints {"qr": {...}} when the link is ready, {"status": ...} on each status change, and
// {"result": {...}} or {"error": {...}} at the end.
'use strict';

const { lark, emit, fail } = require('./common');

const [sandbox, domain, larkDomain] = process.argv.slice(2);
if (!sandbox) fail('usage: register_app.js SANDBOX_URL [DOMAIN [LARK_DOMAIN]]');

lark.defaultHttpInstance.interceptors.request.use((config) => {
  const url = new URL(config.url);
  if (url.protocol === 'https:') {
    config.url = `${sandbox}/_hosts/${url.host}${url.pathname}${url.search}`;
  }
  return config;
});

const options = {
  source: 'rudder-conformance',
  appPreset: { name: 'Node Agent', desc: 'made by the Node SDK' },
  onQRCodeReady: (info) => emit({ qr: info }),
  onStatusChange: (info) => emit({ status: info }),
};
if (domain) options.domain = domain;
if (larkDomain) options.larkDomain = larkDomain;

lark.registerApp(options).then(
  (result) => emit({ result }),
  (error) => emit({ error: { code: error.code, description: error.description, message: error.message } }),
);
