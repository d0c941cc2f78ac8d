import t from 'tap';
import { AMQP_HEARTBEAT_SECONDS, withHeartbeat } from '../../src/common/amqp-url.js';

t.test('withHeartbeat asks for AMQP heartbeats unless the URL names its own', async (t) => {
  t.equal(withHeartbeat('amqp://u:p@mq1:5672/'), `amqp://u:p@mq1:5672/?heartbeat=${AMQP_HEARTBEAT_SECONDS}`);
  t.equal(withHeartbeat('amqps://u:p@mq1:5671/vh', 3), 'amqps://u:p@mq1:5671/vh?heartbeat=3');
  t.equal(withHeartbeat('amqp://mq1/?heartbeat=30&frameMax=4096'), 'amqp://mq1/?heartbeat=30&frameMax=4096', "the operator's own value wins");
  t.equal(withHeartbeat('amqp://mq1/?frameMax=4096'), 'amqp://mq1/?frameMax=4096&heartbeat=10');
});
