"""Independent S3 reader for the end-to-end tests (boto3, not our Rust client).

usage: s3_read.py ENDPOINT BUCKET create
       s3_read.py ENDPOINT BUCKET dump PREFIX OUT_DIR
           downloads every object under PREFIX into OUT_DIR (keys as relative paths)
           and prints one JSON line per object: key, size, version count, metadata.
"""
import json
import os
import sys

import boto3

endpoint, bucket, command = sys.argv[1:4]
s3 = boto3.client(
    "s3",
    endpoint_url=endpoint,
    region_name="us-east-1",
    aws_access_key_id="connectly-test",
    aws_secret_access_key="connectly-test-secret",
)
if command == "create":
    s3.create_bucket(Bucket=bucket)
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
elif command == "dump":
    prefix, out_dir = sys.argv[4:6]
    versions = {}
    for page in s3.get_paginator("list_object_versions").paginate(Bucket=bucket, Prefix=prefix):
        for v in page.get("Versions", []):
            versions[v["Key"]] = versions.get(v["Key"], 0) + 1
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for obj in page.get("Contents", []):
            key = obj["Key"]
            dest = os.path.join(out_dir, key)
            os.makedirs(os.path.dirname(dest), exist_ok=True)
            s3.download_file(bucket, key, dest)
            head = s3.head_object(Bucket=bucket, Key=key)
            print(json.dumps({"key": key, "size": obj["Size"], "versions": versions.get(key, 0),
                              "metadata": head.get("Metadata", {})}))
    uploads = s3.list_multipart_uploads(Bucket=bucket).get("Uploads", [])
    print(json.dumps({"pending_multipart_uploads": len(uploads)}))
else:
    sys.exit(f"unknown command {command}")
