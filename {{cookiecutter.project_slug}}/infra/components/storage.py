"""Storage: the environment's KMS key, data and artifact buckets, and their access-log bucket."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import pulumi
import pulumi_aws as aws

from infra.components.roles import policy
from ml import names


def tls_only_policy(bucket: aws.s3.Bucket, extra: list[dict[str, object]] | None = None) -> pulumi.Output[str]:
    """Deny every request that does not use TLS, for the bucket and its objects."""
    statements: list[dict[str, object]] = [
        {
            "Sid": "DenyInsecureTransport",
            "Effect": "Deny",
            "Principal": "*",
            "Action": "s3:*",
            "Resource": [bucket.arn, pulumi.Output.concat(bucket.arn, "/*")],
            "Condition": {"Bool": {"aws:SecureTransport": "false"}},
        },
        *(extra or []),
    ]
    return policy(statements)


@dataclass
class StorageArgs:
    prefix: str
    env: str
    account_id: str
    noncurrent_version_days: int
    access_log_days: int
    # Roles of other accounts that read the registry's models (account_layout per-environment).
    readers: list[str] = field(default_factory=list)


class Storage(pulumi.ComponentResource):
    key: aws.kms.Key
    data_bucket: aws.s3.Bucket
    artifacts_bucket: aws.s3.Bucket
    log_bucket: aws.s3.Bucket

    def __init__(self, name: str, args: StorageArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("mlops:storage:Storage", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self._args = args

        # Losing the key loses every object encrypted with it: protected and kept even on `pulumi destroy`.
        kept = pulumi.ResourceOptions(parent=self, protect=True, retain_on_delete=True)
        self.key = rotating_key(
            f"{name}-key",
            f"{args.prefix} {args.env}: buckets, training volumes, endpoint storage, data capture",
            names.kms_key_alias(args.prefix, args.env),
            kept,
            policy=key_policy(args.account_id, args.readers),
        )

        # S3 server access logs can only be delivered to a bucket encrypted with SSE-S3.
        self.log_bucket = self._bucket("access-logs", log_bucket=None)
        aws.s3.BucketLifecycleConfiguration(
            f"{name}-access-logs-lifecycle",
            bucket=self.log_bucket.id,
            rules=[
                {
                    "id": "expire-access-logs",
                    "status": "Enabled",
                    "filter": {},
                    "expiration": {"days": args.access_log_days},
                    "noncurrent_version_expiration": {"noncurrent_days": args.noncurrent_version_days},
                }
            ],
            opts=child,
        )
        self.data_bucket = self._bucket("data", log_bucket=self.log_bucket)
        self.artifacts_bucket = self._bucket("artifacts", log_bucket=self.log_bucket, readers=args.readers)
        self.register_outputs(
            {
                "kms_key_arn": self.key.arn,
                "data_bucket": self.data_bucket.bucket,
                "artifacts_bucket": self.artifacts_bucket.bucket,
                "log_bucket": self.log_bucket.bucket,
            }
        )

    def _bucket(
        self, purpose: str, log_bucket: aws.s3.Bucket | None, readers: list[str] | None = None
    ) -> aws.s3.Bucket:
        args = self._args
        return secure_bucket(
            f"{args.env}-{purpose}",
            names.bucket_name(args.prefix, args.env, purpose, args.account_id),
            # S3 delivers server access logs only to SSE-S3 buckets: the log bucket gets no KMS key.
            key=self.key if log_bucket is not None else None,
            log_bucket=log_bucket,
            noncurrent_version_days=args.noncurrent_version_days,
            account_id=args.account_id,
            parent=self,
            # Data and models are what the project exists for; access logs may go with the stack.
            keep=purpose != "access-logs",
            readers=readers or [],
        )


def key_policy(account_id: str, readers: list[str]) -> str:
    """The account administers the key; named roles of other accounts may decrypt what it encrypts.

    Cross-account grants name the other account as principal and the role by aws:PrincipalArn: a
    key policy that named a role not yet created in that account would be refused.
    """
    statements: list[dict[str, object]] = [
        {
            "Sid": "AccountAdministersTheKey",
            "Effect": "Allow",
            "Principal": {"AWS": f"arn:aws:iam::{account_id}:root"},
            "Action": "kms:*",
            "Resource": "*",
        }
    ]
    if readers:
        statements.append(
            {
                "Sid": "OtherEnvironmentsReadTheRegistry",
                "Effect": "Allow",
                "Principal": {"AWS": sorted({f"arn:aws:iam::{arn.split(':')[4]}:root" for arn in readers})},
                "Action": ["kms:Decrypt", "kms:DescribeKey"],
                "Resource": "*",
                "Condition": {"ArnEquals": {"aws:PrincipalArn": readers}},
            }
        )
    return json.dumps({"Version": "2012-10-17", "Statement": statements})


def rotating_key(
    logical: str, description: str, alias: str, opts: pulumi.ResourceOptions, policy: str | None = None
) -> aws.kms.Key:
    """A KMS key that rotates yearly, with a 30-day deletion window, and its alias."""
    key = aws.kms.Key(
        logical,
        description=description,
        enable_key_rotation=True,
        deletion_window_in_days=30,
        policy=policy,
        opts=opts,
    )
    aws.kms.Alias(
        f"{logical}-alias", name=alias, target_key_id=key.key_id, opts=pulumi.ResourceOptions(parent=opts.parent)
    )
    return key


def secure_bucket(
    logical: str,
    bucket_name: str,
    key: aws.kms.Key | None,
    log_bucket: aws.s3.Bucket | None,
    noncurrent_version_days: int,
    account_id: str,
    parent: pulumi.Resource,
    keep: bool = True,
    readers: list[str] | None = None,
) -> aws.s3.Bucket:
    """A bucket with every guard rail: no public access, no ACLs, versioning, encryption, TLS only.

    With key=None the bucket uses SSE-S3 and accepts S3 server access logs (the one kind of
    bucket that may not use SSE-KMS); otherwise SSE-KMS with a bucket key, access logs to
    log_bucket, and noncurrent versions expire.
    """
    child = pulumi.ResourceOptions(parent=parent)
    # keep: `pulumi destroy` (or a refactor that drops the bucket) must not take the data with it.
    bucket = aws.s3.Bucket(
        logical, bucket=bucket_name, opts=pulumi.ResourceOptions(parent=parent, protect=keep, retain_on_delete=keep)
    )
    aws.s3.BucketPublicAccessBlock(
        f"{logical}-public-access-block",
        bucket=bucket.id,
        block_public_acls=True,
        block_public_policy=True,
        ignore_public_acls=True,
        restrict_public_buckets=True,
        opts=child,
    )
    aws.s3.BucketOwnershipControls(
        f"{logical}-ownership", bucket=bucket.id, rule={"object_ownership": "BucketOwnerEnforced"}, opts=child
    )
    aws.s3.BucketVersioning(
        f"{logical}-versioning", bucket=bucket.id, versioning_configuration={"status": "Enabled"}, opts=child
    )
    encryption = aws.s3.BucketServerSideEncryptionConfigurationRuleApplyServerSideEncryptionByDefaultArgs(
        sse_algorithm="aws:kms" if key else "AES256", kms_master_key_id=key.arn if key else None
    )
    aws.s3.BucketServerSideEncryptionConfiguration(
        f"{logical}-encryption",
        bucket=bucket.id,
        rules=[
            aws.s3.BucketServerSideEncryptionConfigurationRuleArgs(
                apply_server_side_encryption_by_default=encryption, bucket_key_enabled=key is not None
            )
        ],
        opts=child,
    )
    extra: list[dict[str, object]] = []
    if key is not None:
        aws.s3.BucketLifecycleConfiguration(
            f"{logical}-lifecycle",
            bucket=bucket.id,
            rules=[
                {
                    "id": "expire-noncurrent-versions",
                    "status": "Enabled",
                    "filter": {},
                    "noncurrent_version_expiration": {"noncurrent_days": noncurrent_version_days},
                    "abort_incomplete_multipart_upload": {"days_after_initiation": 7},
                }
            ],
            opts=child,
        )
    else:
        # With BucketOwnerEnforced there are no ACLs, so the logging service is granted by policy.
        extra.append(
            {
                "Sid": "AllowS3ServerAccessLogs",
                "Effect": "Allow",
                "Principal": {"Service": "logging.s3.amazonaws.com"},
                "Action": "s3:PutObject",
                "Resource": pulumi.Output.concat(bucket.arn, "/*"),
                "Condition": {"StringEquals": {"aws:SourceAccount": account_id}},
            }
        )
    if readers:
        extra.append(
            {
                # Models, baselines and evaluations are content-addressed under sha256/.
                "Sid": "OtherEnvironmentsReadTheRegistry",
                "Effect": "Allow",
                "Principal": {"AWS": sorted({f"arn:aws:iam::{arn.split(':')[4]}:root" for arn in readers})},
                "Action": "s3:GetObject",
                "Resource": pulumi.Output.concat(bucket.arn, "/sha256/*"),
                "Condition": {"ArnEquals": {"aws:PrincipalArn": readers}},
            }
        )
    if log_bucket is not None:
        aws.s3.BucketLogging(
            f"{logical}-logging",
            bucket=bucket.id,
            target_bucket=log_bucket.id,
            target_prefix=f"{bucket_name}/",
            opts=child,
        )
    aws.s3.BucketPolicy(f"{logical}-policy", bucket=bucket.id, policy=tls_only_policy(bucket, extra), opts=child)
    return bucket
