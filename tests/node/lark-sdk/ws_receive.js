// node ws_receive.js SANDBOX_URL APP_ID APP_SECRET
// The SDK's WSClient connects to the sandbox and prints every im.message.receive_v1 it handles;
// returning from the handler is what makes the SDK ack the frame. A card.action.trigger press is
// printed too and answered with a toast and a new card.
'use strict';

const { lark, logger, emit, fail } = require('./common');

const [sandbox, appId, appSecret] = process.argv.slice(2);
if (!sandbox || !appId || !appSecret) fail('usage: ws_receive.js SANDBOX_URL APP_ID APP_SECRET');

const dispatcher = new lark.EventDispatcher({ logger, loggerLevel: lark.LoggerLevel.warn }).register({
  'im.message.receive_v1': async (data) => {
    emit({
      event_id: data.event_id,
      token: data.token,
      app_id: data.app_id,
      message_id: data.message.message_id,
      chat_type: data.message.chat_type,
      content: data.message.content,
      sender_open_id: data.sender.sender_id.open_id,
    });
    return 'ok';
  },
  // A card button press: the handler's answer rides back in the ack's data.
  'card.action.trigger': async (data) => {
    emit({
      callback: true,
      open_id: data.operator.open_id,
      value: data.action.value,
      message_id: data.context.open_message_id,
    });
    return {
      toast: { type: 'success', content: `node got ${JSON.stringify(data.action.value)}` },
      card: { type: 'raw', data: { schema: '2.0', body: { elements: [{ tag: 'markdown', content: 'node card' }] } } },
    };
  },
});

const client = new lark.WSClient({
  appId,
  appSecret,
  domain: sandbox,
  logger,
  loggerLevel: lark.LoggerLevel.warn,
  onReady: () => emit({ ready: true }),
  onError: (error) => fail(error),
});
client.start({ eventDispatcher: dispatcher });
process.on('SIGTERM', () => {
  client.close();
  process.exit(0);
});
