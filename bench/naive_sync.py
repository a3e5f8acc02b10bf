#!/usr/bin/env python3
"""The naive sync a user might write instead of connectly-sync: the reference that
`cargo xtask bench` compares against. Deliberately plain, not deliberately slow.

For every completed report of one business: download the CSV into memory (urllib),
parse it (csv module), insert it row by row into a typed SQLite table with a unique
key (one transaction), write a copy of the file, and upload it to S3 (boto3).

usage: naive_sync.py BASE_URL BUSINESS_ID API_KEY SQLITE_DB FILE_DIR S3_ENDPOINT BUCKET
(AWS credentials and region from the environment, as for any boto3 script.)
"""

import csv
import io
import json
import os
import sqlite3
import sys
import urllib.request

import boto3

COLUMNS = [
    "customer_external_id", "business_id", "campaign_name", "sendout_id", "cnt_session_id",
    "sent_at", "delivered_at", "read_at", "opt_out_at", "error_code", "error_msg",
    "button_clicks", "link_clicks", "input_variables", "output_variables",
]


def main():
    base, business, key, db_path, file_dir, endpoint, bucket = sys.argv[1:8]
    req = urllib.request.Request(
        f"{base}/v1/businesses/{business}/reporting/reports", headers={"X-API-Key": key}
    )
    reports = json.load(urllib.request.urlopen(req))["data"]

    db = sqlite3.connect(db_path)
    db.execute(
        "CREATE TABLE IF NOT EXISTS campaign_rows ("
        "customer_external_id TEXT NOT NULL, business_id TEXT NOT NULL, campaign_name TEXT NOT NULL, "
        "sendout_id TEXT NOT NULL, cnt_session_id TEXT NOT NULL, sent_at TEXT, delivered_at TEXT, "
        "read_at TEXT, opt_out_at TEXT, error_code INTEGER, error_msg TEXT, button_clicks TEXT, "
        "link_clicks TEXT, input_variables TEXT, output_variables TEXT, "
        "UNIQUE (sendout_id, customer_external_id))"
    )
    s3 = boto3.client("s3", endpoint_url=endpoint)
    os.makedirs(file_dir, exist_ok=True)

    for report in reports:
        run = report.get("lastRun") or {}
        url = (run.get("result") or {}).get("url")
        if run.get("status") != "completed" or not url:
            continue
        body = urllib.request.urlopen(url).read()
        text = body.decode("utf-8-sig")
        rows = list(csv.reader(io.StringIO(text, newline="")))
        header, rows = rows[0], rows[1:]
        if header[:15] != COLUMNS:
            continue
        placeholders = ", ".join("?" * 15)
        with db:
            for row in rows:
                values = [cell if cell != "" else None for cell in row[:15]]
                if values[9] is not None:
                    values[9] = int(values[9])
                db.execute(
                    f"INSERT OR REPLACE INTO campaign_rows ({', '.join(COLUMNS)}) VALUES ({placeholders})",
                    values,
                )
        name = f"{report['id']}_{run['id']}.csv"
        with open(os.path.join(file_dir, name), "wb") as f:
            f.write(body)
        s3.put_object(Bucket=bucket, Key=name, Body=body)
        print(f"{report['id']} {run['id']}: {len(rows)} rows", flush=True)


if __name__ == "__main__":
    main()
