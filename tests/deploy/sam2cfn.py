"""Translates a SAM template to plain CloudFormation, offline, so that
cfn-lint can check what SAM generates (event source mappings, policies)
and not only the SAM resources themselves.

    python sam2cfn.py template.json out.json

A local CodeUri is replaced by an S3 placeholder, as `sam deploy` would
upload it; managed policy names are not looked up (no IAM call).
"""
import json
import sys

from samtranslator.translator.transform import transform
from samtranslator.yaml_helper import yaml_parse


class NoManagedPolicies:
    def load(self):
        return {}


def main(src, dst):
    with open(src) as f:
        template = yaml_parse(f.read())
    for resource in template.get("Resources", {}).values():
        props = resource.get("Properties", {})
        code = props.get("CodeUri")
        if resource.get("Type") == "AWS::Serverless::Function" and isinstance(code, str) \
                and not code.startswith("s3://"):
            props["CodeUri"] = "s3://sluice-placeholder/bootstrap.zip"
    with open(dst, "w") as f:
        json.dump(transform(template, {}, NoManagedPolicies()), f, indent=1)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
