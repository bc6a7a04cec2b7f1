// The orders workload (bench/workload/WORKLOAD.md) as a team would write a
// Node.js Lambda handler for a Kinesis stream: each record base64-decoded,
// parsed, validated by an Ajv validator compiled once (JSON Schema draft
// 2020-12), transformed, routed and written.
'use strict';

const Ajv2020 = require('ajv/dist/2020');

// Builds the handler for `schema`; `write(sink, line)` receives each output
// line (`archive`, `big_orders`, `dlq`).
function makeHandler(schema, write) {
  // `format` is an annotation in the workload, not asserted.
  const ajv = new Ajv2020({ allErrors: false, strict: false, validateFormats: false });
  const validate = ajv.compile(schema);

  function dead(k, stage, error, data) {
    write('dlq', JSON.stringify({
      stage, error, data,
      partition_key: k.partitionKey, sequence_number: k.sequenceNumber,
    }));
  }

  return function handle(event) {
    const processedAt = new Date().toISOString();
    const records = event.Records;
    for (let i = 0; i < records.length; i++) {
      const k = records[i].kinesis;
      const text = Buffer.from(k.data, 'base64').toString('utf8');
      let order;
      try {
        order = JSON.parse(text);
      } catch (e) {
        dead(k, 'parse', `invalid JSON: ${e.message}`, text);
        continue;
      }
      if (!validate(order)) {
        const e = validate.errors[0];
        dead(k, 'validate', `${e.message} at ${e.instancePath || '/'}`, text);
        continue;
      }
      if (order.customer_id.startsWith('test-')) {
        continue; // filtered on purpose
      }
      let total = 0.0;
      for (const item of order.items) {
        total += item.qty * item.price;
      }
      order.total = total;
      order.tier = total > 1000 ? 'big' : 'small';
      order.region = order.region.toLowerCase();
      order.processed_at = processedAt;
      const line = JSON.stringify(order);
      write('archive', line);
      if (order.tier === 'big') {
        write('big_orders', line);
      }
    }
    return { batchItemFailures: [] };
  };
}

module.exports = { makeHandler };
