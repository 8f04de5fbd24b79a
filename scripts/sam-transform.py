"""Prints a SAM template as CloudFormation deploys it: after the AWS::Serverless transform, as JSON.

What SAM generates (execution roles, the schedule and its role, the function URL and its
permissions, event invoke configs) exists only after the transform, so a scanner must read
this form to see it. Offline, like `sam validate`: local CodeUri/ContentUri become placeholder
S3 URIs and no managed policy is looked up in IAM (the template names policies by ARN). Each
generated resource keeps its SAM resource's Metadata, so a checkov skip written on a function
also covers what SAM makes from it (its role, URL, permissions).

Usage, with aws-sam-translator importable (the tools venv) and AWS_DEFAULT_REGION set:
  python3.12 scripts/sam-transform.py template.yaml > transformed.json
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from samtranslator.translator.transform import transform
from samtranslator.yaml_helper import yaml_parse

LOCAL_CODE = {"AWS::Serverless::Function": "CodeUri", "AWS::Serverless::LayerVersion": "ContentUri"}


class NoPolicyLookup:
    """What SAM asks for a policy named without its ARN: nothing, never IAM's ListPolicies."""

    def load(self) -> dict[str, str]:
        return {}


def main(path: str) -> None:
    template = yaml_parse(Path(path).read_text())
    for resource in template["Resources"].values():
        properties = resource.get("Properties", {})
        key = LOCAL_CODE.get(resource.get("Type"))
        if key and isinstance(properties.get(key), str) and not properties[key].startswith("s3://"):
            properties[key] = f"s3://local-build/{properties[key]}"
    json.dump(transform(template, {}, NoPolicyLookup(), passthrough_metadata=True), sys.stdout, indent=1)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main(sys.argv[1])
