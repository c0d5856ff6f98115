// node webhook_receiver.js ENCRYPT_KEY VERIFICATION_TOKEN
// An HTTP receiver built on the SDK's EventDispatcher, on 127.0.0.1 (any free port).
// Prints {"port": N} once listening, then one JSON line per request:
//   {"accepted": true, "event_id": ..., "event": {...}}   → answered HTTP 200
//   {"accepted": false}                                    → answered HTTP 401
// The SDK's own adaptDefault answers 200 with an empty body even when it rejects an event
// ("verification failed event"), which Feishu counts as delivered; a receiver has to answer
// a non-200 status for Feishu to push the event again, so this one does.
'use strict';

const http = require('http');
const { lark, logger, emit, fail } = require('./common');

const [encryptKey, verificationToken] = process.argv.slice(2);
if (encryptKey === undefined || verificationToken === undefined) {
  fail('usage: webhook_receiver.js ENCRYPT_KEY VERIFICATION_TOKEN');
}

const dispatcher = new lark.EventDispatcher({
  encryptKey,
  verificationToken,
  logger,
  loggerLevel: lark.LoggerLevel.warn,
}).register({
  'im.message.receive_v1': async (data) => ({ handled: data.event_id, message_id: data.message.message_id, text: data.message.content }),
  'sandbox.test_v1': async (data) => ({ handled: data.event_id }),
});

const server = http.createServer((req, res) => {
  let raw = '';
  req.on('data', (chunk) => { raw += chunk; });
  req.on('end', async () => {
    let body;
    try {
      body = JSON.parse(raw);
    } catch (error) {
      res.writeHead(400).end();
      emit({ accepted: false, reason: 'not JSON' });
      return;
    }
    // The same shape the SDK's adaptors hand to invoke(): the body, with the headers on its prototype.
    const data = Object.assign(Object.create({ headers: req.headers }), body);
    let challenge = { isChallenge: false };
    try {
      challenge = lark.generateChallenge(data, { encryptKey });
    } catch (error) {
      // Not decryptable with our key: not a challenge we can answer; invoke() judges the rest.
    }
    if (challenge.isChallenge) {
      res.writeHead(200, { 'Content-Type': 'application/json' }).end(JSON.stringify(challenge.challenge));
      emit({ challenge: true });
      return;
    }
    const value = await dispatcher.invoke(data);
    if (value === undefined) {
      res.writeHead(401).end();
      emit({ accepted: false, reason: 'verification failed' });
      return;
    }
    res.writeHead(200, { 'Content-Type': 'application/json' }).end(JSON.stringify({ msg: 'success' }));
    emit({ accepted: true, value });
  });
});

server.listen(0, '127.0.0.1', () => emit({ port: server.address().port }));
process.on('SIGTERM', () => server.close(() => process.exit(0)));
