// node media_calls.js SANDBOX_URL APP_ID APP_SECRET CHAT_ID MESSAGE_ID FILE_KEY
// The SDK's Client against the sandbox's media API: upload an image and a file, send both, and
// download the resource FILE_KEY of MESSAGE_ID (a person's file). Prints one JSON line.
'use strict';

const crypto = require('crypto');
const { lark, logger, emit, fail } = require('./common');

const [sandbox, appId, appSecret, chatId, messageId, fileKey] = process.argv.slice(2);
if (!fileKey) fail('usage: media_calls.js SANDBOX_URL APP_ID APP_SECRET CHAT_ID MESSAGE_ID FILE_KEY');

const client = new lark.Client({ appId, appSecret, domain: sandbox, logger, loggerLevel: lark.LoggerLevel.warn });
// A 1x1 PNG.
const PNG = Buffer.from(
  '89504e470d0a1a0a0000000d4948445200000001000000010806000000' +
  '1f15c4890000000d49444154789c6360000002000005000153a3a3c50000000049454e44ae426082', 'hex');

async function streamBytes(stream) {
  const chunks = [];
  for await (const chunk of stream) chunks.push(chunk);
  return Buffer.concat(chunks);
}

async function main() {
  const out = {};
  const image = await client.im.v1.image.create({ data: { image_type: 'message', image: PNG } });
  // The SDK hands back the upload's `data` ({image_key}) rather than the whole body.
  out.image_key = image.image_key || (image.data && image.data.image_key);
  const doc = Buffer.from('node file body\n'.repeat(100));
  const file = await client.im.v1.file.create({
    data: { file_type: 'stream', file_name: 'node.txt', file: doc },
  });
  out.file_key = file.file_key || (file.data && file.data.file_key);
  out.file_sha256 = crypto.createHash('sha256').update(doc).digest('hex');
  const sent = await client.im.v1.message.create({
    params: { receive_id_type: 'chat_id' },
    data: { receive_id: chatId, msg_type: 'image', content: JSON.stringify({ image_key: out.image_key }) },
  });
  out.sent_code = sent.code;
  const resource = await client.im.v1.messageResource.get({
    path: { message_id: messageId, file_key: fileKey },
    params: { type: 'file' },
  });
  out.download_sha256 = crypto.createHash('sha256').update(await streamBytes(resource.getReadableStream())).digest('hex');
  try {
    await client.im.v1.messageResource.get({ path: { message_id: messageId, file_key: 'file_v3_nope' }, params: { type: 'file' } });
    out.wrong_key = 'no error';
  } catch (error) {
    // The download asks for a stream, so an error's JSON body arrives as one too.
    const body = error.response && error.response.data;
    const raw = body && typeof body.on === 'function' ? await streamBytes(body) : Buffer.from(JSON.stringify(body || {}));
    out.wrong_key = JSON.parse(raw.toString()).code;
  }
  emit(out);
}

main().catch(fail);
