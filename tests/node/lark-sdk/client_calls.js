// node client_calls.js SANDBOX_URL APP_ID APP_SECRET CHAT_ID MESSAGE_ID
// The SDK's Client against the sandbox: send, reply, react, and a CardKit streaming card
// (create, send, two streamed updates, close streaming in settings). Prints one JSON line with
// every answer's code and the ids the test checks in the sandbox's own records.
'use strict';

const { lark, logger, emit, fail } = require('./common');

const [sandbox, appId, appSecret, chatId, messageId] = process.argv.slice(2);
if (!messageId) fail('usage: client_calls.js SANDBOX_URL APP_ID APP_SECRET CHAT_ID MESSAGE_ID');

const client = new lark.Client({
  appId,
  appSecret,
  domain: sandbox,
  logger,
  loggerLevel: lark.LoggerLevel.warn,
});

function check(step, response) {
  if (!response || response.code !== 0) {
    fail(`${step} answered ${JSON.stringify(response)}`);
  }
  return response.data || {};
}

async function main() {
  const out = {};
  const sent = check('send', await client.im.v1.message.create({
    params: { receive_id_type: 'chat_id' },
    data: { receive_id: chatId, msg_type: 'text', content: JSON.stringify({ text: 'hi from node' }) },
  }));
  out.sent = sent.message_id;

  const replied = check('reply', await client.im.v1.message.reply({
    path: { message_id: messageId },
    data: { msg_type: 'text', content: JSON.stringify({ text: 'a reply from node' }), uuid: 'node-reply-1' },
  }));
  out.replied = replied.message_id;
  out.reply_parent = replied.parent_id;

  const reacted = check('react', await client.im.v1.messageReaction.create({
    path: { message_id: messageId },
    data: { reaction_type: { emoji_type: 'THUMBSUP' } },
  }));
  out.reaction_id = reacted.reaction_id;

  const card = {
    schema: '2.0',
    config: { streaming_mode: true },
    body: { elements: [{ tag: 'markdown', content: '', element_id: 'streaming_content' }] },
  };
  const created = check('card.create', await client.cardkit.v1.card.create({
    data: { type: 'card_json', data: JSON.stringify(card) },
  }));
  out.card_id = created.card_id;

  const cardMessage = check('send card', await client.im.v1.message.create({
    params: { receive_id_type: 'chat_id' },
    data: {
      receive_id: chatId,
      msg_type: 'interactive',
      content: JSON.stringify({ type: 'card', data: { card_id: created.card_id } }),
    },
  }));
  out.card_message = cardMessage.message_id;

  let sequence = 0;
  for (const text of ['Streaming', 'Streaming from node']) {
    sequence += 1;
    check(`stream ${sequence}`, await client.cardkit.v1.cardElement.content({
      path: { card_id: created.card_id, element_id: 'streaming_content' },
      data: { content: text, sequence },
    }));
  }
  sequence += 1;
  check('card.settings', await client.cardkit.v1.card.settings({
    path: { card_id: created.card_id },
    data: { settings: JSON.stringify({ config: { streaming_mode: false } }), sequence },
  }));
  // After streaming is closed the platform refuses further streamed content (300309).
  try {
    const late = await client.cardkit.v1.cardElement.content({
      path: { card_id: created.card_id, element_id: 'streaming_content' },
      data: { content: 'too late', sequence: sequence + 1 },
    });
    out.after_close = late.code;
  } catch (error) {
    out.after_close = error.response && error.response.data ? error.response.data.code : String(error);
  }
  emit(out);
}

main().catch(fail);
