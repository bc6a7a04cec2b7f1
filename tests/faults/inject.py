"""Fault injection for the integration tests: a mitmproxy addon that sits
between `sluice` and `moto_server` (reverse proxy mode) and answers chosen AWS
calls the way a loaded AWS service does.

SLUICE_FAULTS is a JSON list of rules:

    {"op": "Kinesis_20131202.PutRecords",  # X-Amz-Target, or "S3.PUT" (method)
     "calls": [1, 2],                      # which calls of that op (1-based); omit for all
     "fault": "partial",                   # partial | error | latency
     "ms": 700,                            # latency: the delay before the call goes on
     "every": 2,                           # partial: entries 0, every, 2*every ... fail
     "while_exists": "/tmp/x/stall",       # only while this file exists (a sink that stalls, then comes back)
     "resource": "dead-letters",           # only calls about this queue, stream, table or bucket
     "status": 400, "code": "...", "message": "..."}   # error: the response

or a random rule, which picks a fault for a share of the calls:

    {"op": "*",                            # every operation, or one
     "rate": 0.3,                          # the share of calls given a fault
     "seed": 7,                            # the same seed, call and op: the same fault
     "faults": ["throttle", "5xx", "reset", "lost", "latency", "partial"],
     "ms": 300,                            # latency
     "except": ["S3.GET"]}                 # operations left alone

where `throttle` answers the service's throttling error, `5xx` an internal
error or service unavailable, `reset` closes the connection before the call
reaches the service, `lost` lets the call through and closes the connection
before its answer, and `partial` fails every other entry of a batch call
(other calls get `5xx` instead).

A partial failure really leaves the failed entries out of the request moto
gets, and reports them failed in the response, as the service does for
PutRecords (per-record ErrorCode), SendMessageBatch and DeleteMessageBatch
(Failed, not the sender's fault) and BatchWriteItem (UnprocessedItems).

Every call is logged to SLUICE_FAULTS_LOG as a JSON line:
{"op": ..., "call": n, "resource": name or null, "entries": n or null,
 "fault": "partial" | "error" | "latency" | "reset" | "lost" | null,
 "kind": the random rule's kind ("throttle", "5xx", ...), else the fault}.
"""

import asyncio
import collections
import json
import os
import random
import zlib

from mitmproxy import http

RULES = json.loads(os.environ.get("SLUICE_FAULTS", "[]"))
LOG = os.environ.get("SLUICE_FAULTS_LOG")
CALLS = collections.Counter()

JSON_TYPES = {
    "Kinesis": "application/x-amz-json-1.1",
    "DynamoDB": "application/x-amz-json-1.0",
    "AmazonSQS": "application/x-amz-json-1.0",
}

# Where each batch operation keeps its entries.
ENTRIES = {
    "Kinesis_20131202.PutRecords": "Records",
    "AmazonSQS.SendMessageBatch": "Entries",
    "AmazonSQS.DeleteMessageBatch": "Entries",
}


def op_of(request):
    target = request.headers.get("X-Amz-Target")
    return target if target else "S3." + request.method


def entry_count(op, body):
    if op in ENTRIES:
        return len(body.get(ENTRIES[op], []))
    if op == "DynamoDB_20120810.BatchWriteItem":
        return sum(len(v) for v in body.get("RequestItems", {}).values())
    return None


def resource_of(op, request, body):
    """The queue, stream, table or bucket a call is about."""
    if body is None:
        return request.path.lstrip("/").split("/")[0].split("?")[0]
    for key in ("QueueUrl", "StreamName", "StreamARN", "TableName"):
        if key in body:
            return body[key].rsplit("/", 1)[-1]
    if "RequestItems" in body:
        return ",".join(sorted(body["RequestItems"]))
    return None


def log(line):
    if LOG:
        with open(LOG, "a") as f:
            f.write(json.dumps(line) + "\n")


BATCH_OPS = set(ENTRIES) | {"DynamoDB_20120810.BatchWriteItem"}

# The throttling error of each service.
THROTTLE = {
    "Kinesis": (400, "ProvisionedThroughputExceededException", "Rate exceeded for shard"),
    "DynamoDB": (400, "ThrottlingException", "Rate of requests exceeds the allowed throughput."),
    "AmazonSQS": (400, "ThrottlingException", "Rate exceeded"),
    "S3": (503, "SlowDown", "Please reduce your request rate."),
}


def service_of(op):
    return op.split("_")[0].split(".")[0]


def random_fault(rule, op, call):
    """The fault a random rule gives this call, as a concrete rule, or None."""
    if op in rule.get("except", []):
        return None
    pick = random.Random(f"{rule.get('seed', 0)}:{op}:{call}")
    if pick.random() >= rule["rate"]:
        return None
    kind = pick.choice(rule["faults"])
    if kind == "partial" and op not in BATCH_OPS:
        kind = "5xx"
    if kind == "throttle":
        status, code, message = THROTTLE[service_of(op)]
        return {"fault": "error", "kind": kind, "status": status, "code": code, "message": message}
    if kind == "5xx":
        status, code = pick.choice([(500, "InternalFailure"), (503, "ServiceUnavailable")])
        if service_of(op) == "S3":
            code = "InternalError" if status == 500 else "ServiceUnavailable"
        return {"fault": "error", "kind": kind, "status": status, "code": code,
                "message": "injected server error"}
    if kind == "latency":
        return {"fault": "latency", "kind": kind, "ms": rule.get("ms", 300)}
    return {"fault": kind, "kind": kind, "every": 2}


def rule_for(op, call, resource):
    for rule in RULES:
        if "resource" in rule and rule["resource"] != resource:
            continue
        if "rate" in rule:
            if rule["op"] in ("*", op):
                return random_fault(rule, op, call)
            continue
        if rule["op"] == op and ("calls" not in rule or call in rule["calls"]):
            if "while_exists" in rule and not os.path.exists(rule["while_exists"]):
                continue
            return rule
    return None


def error_response(op, rule):
    status = rule.get("status", 400)
    code = rule.get("code", "ThrottlingException")
    message = rule.get("message", "Rate exceeded")
    service = op.split("_")[0].split(".")[0]
    if service in JSON_TYPES:
        body = json.dumps({"__type": code, "message": message})
        return http.Response.make(status, body, {"Content-Type": JSON_TYPES[service]})
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>'
        f"<Error><Code>{code}</Code><Message>{message}</Message>"
        "<RequestId>injected</RequestId></Error>"
    )
    return http.Response.make(status, body, {"Content-Type": "application/xml"})


def set_json(message, value):
    message.text = json.dumps(value)
    if "x-amz-crc32" in message.headers:
        message.headers["x-amz-crc32"] = str(zlib.crc32(message.content) & 0xFFFFFFFF)


class Inject:
    async def request(self, flow: http.HTTPFlow):
        op = op_of(flow.request)
        CALLS[op] += 1
        call = CALLS[op]
        body = None
        if flow.request.headers.get("X-Amz-Target"):
            body = json.loads(flow.request.content or b"{}")
        resource = resource_of(op, flow.request, body)
        rule = rule_for(op, call, resource)
        fault = rule["fault"] if rule else None
        log({"op": op, "call": call, "resource": resource,
             "entries": entry_count(op, body or {}), "fault": fault,
             "kind": rule.get("kind", fault) if rule else None})
        if rule is None:
            return
        if fault == "error":
            flow.response = error_response(op, rule)
            return
        if fault == "reset":
            flow.kill()
            return
        if fault == "lost":
            flow.metadata["lost"] = True
            return
        if fault == "latency":
            await asyncio.sleep(rule["ms"] / 1000)
            return
        every = rule.get("every", 2)
        if op in ENTRIES:
            entries = body[ENTRIES[op]]
            failed = [i for i in range(len(entries)) if i % every == 0]
            body[ENTRIES[op]] = [e for i, e in enumerate(entries) if i % every != 0]
            flow.metadata["failed"] = [(i, entries[i]) for i in failed]
            flow.metadata["total"] = len(entries)
        elif op == "DynamoDB_20120810.BatchWriteItem":
            unprocessed, kept, n = {}, {}, 0
            for table, requests in body["RequestItems"].items():
                for r in requests:
                    (unprocessed if n % every == 0 else kept).setdefault(table, []).append(r)
                    n += 1
            body["RequestItems"] = kept
            flow.metadata["unprocessed"] = unprocessed
        else:
            raise ValueError(f"no partial failure for {op}")
        flow.metadata["op"] = op
        if not any(body.get(k) for k in ("Records", "Entries", "RequestItems")):
            # Nothing left for moto: answer for it.
            flow.response = http.Response.make(200, "{}", {"Content-Type": JSON_TYPES[op.split("_")[0].split(".")[0]]})
            self.response(flow)
            return
        set_json(flow.request, body)

    def response(self, flow: http.HTTPFlow):
        if flow.metadata.get("lost"):
            flow.kill()
            return
        op = flow.metadata.get("op")
        if op is None or flow.response.status_code != 200:
            return
        out = json.loads(flow.response.content or b"{}")
        if op == "Kinesis_20131202.PutRecords":
            failed = dict(flow.metadata["failed"])
            done = iter(out.get("Records", []))
            records = []
            for i in range(flow.metadata["total"]):
                if i in failed:
                    records.append({
                        "ErrorCode": "ProvisionedThroughputExceededException",
                        "ErrorMessage": "Rate exceeded for shard in stream under account 123456789012.",
                    })
                else:
                    records.append(next(done))
            out["Records"] = records
            out["FailedRecordCount"] = sum(1 for r in records if "ErrorCode" in r)
        elif op in ("AmazonSQS.SendMessageBatch", "AmazonSQS.DeleteMessageBatch"):
            out.setdefault("Successful", [])
            out.setdefault("Failed", [])
            for _, entry in flow.metadata["failed"]:
                out["Failed"].append({
                    "Id": entry["Id"], "SenderFault": False,
                    "Code": "InternalError", "Message": "injected internal error",
                })
        elif op == "DynamoDB_20120810.BatchWriteItem":
            out["UnprocessedItems"] = flow.metadata["unprocessed"]
        set_json(flow.response, out)


addons = [Inject()]
