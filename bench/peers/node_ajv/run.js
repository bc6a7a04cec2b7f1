// Times the Node.js handler on the orders workload's Kinesis event files:
//   ORDER_SCHEMA=… node run.js EVENTS_DIR OUT_DIR RUNS
// Every event file is read into memory first; a run times, per event, the
// event's JSON parse (what the Lambda runtime does before the call) and the
// handler, to the sink lines written. Prints one JSON line:
// {"impl":"node-ajv","records":N,"median_rps_wall":R}.
'use strict';

const fs = require('fs');
const path = require('path');
const { makeHandler } = require('./handler');

function main() {
  const [eventsDir, outDir, runsArg] = process.argv.slice(2);
  const runs = Number(runsArg || 5);
  if (!eventsDir || !outDir || !process.env.ORDER_SCHEMA || !(runs >= 1)) {
    console.error('usage: ORDER_SCHEMA=FILE node run.js EVENTS_DIR OUT_DIR RUNS');
    process.exit(2);
  }
  const schema = JSON.parse(fs.readFileSync(process.env.ORDER_SCHEMA, 'utf8'));
  const events = fs.readdirSync(eventsDir)
    .filter((f) => f.endsWith('.json'))
    .sort()
    .map((f) => fs.readFileSync(path.join(eventsDir, f), 'utf8'));
  fs.mkdirSync(outDir, { recursive: true });

  const rates = [];
  let records = 0;
  for (let run = 0; run < runs; run++) {
    const sinks = { archive: [], big_orders: [], dlq: [] };
    const handle = makeHandler(schema, (sink, line) => sinks[sink].push(line));
    const start = process.hrtime.bigint();
    records = 0;
    for (const text of events) {
      const event = JSON.parse(text);
      records += event.Records.length;
      handle(event);
    }
    for (const [name, lines] of Object.entries(sinks)) {
      fs.writeFileSync(path.join(outDir, `${name}.jsonl`), lines.length ? lines.join('\n') + '\n' : '');
    }
    const seconds = Number(process.hrtime.bigint() - start) / 1e9;
    rates.push(records / seconds);
  }
  rates.sort((a, b) => a - b);
  console.log(JSON.stringify({ impl: 'node-ajv', records, median_rps_wall: rates[Math.floor(rates.length / 2)] }));
}

main();
