################################################################################
# Customer managed KMS key for the platform: CloudWatch log groups, ECR images
# and ECS Exec sessions. (The optional Service Connect TLS key is separate, in
# service_connect.tf, because its key policy names the infrastructure role.)
################################################################################

data "aws_iam_policy_document" "platform_kms" {
  #checkov:skip=CKV_AWS_111:This is a KMS key policy, not an IAM policy: Resource "*" means this key only, and the account-root kms:* statement is the AWS default that delegates key access to IAM.
  #checkov:skip=CKV_AWS_356:This is a KMS key policy: Resource "*" in a key policy refers to the key itself, no other resource can be named.
  #checkov:skip=CKV_AWS_109:This is a KMS key policy: the account-root statement is the AWS default key policy (without it the key becomes unmanageable); other principals get only the listed usage actions.
  # Key policies always use Resource "*": inside a key policy it means "this
  # key" and nothing else.
  statement {
    sid       = "AccountAdministration"
    actions   = ["kms:*"]
    resources = ["*"]

    principals {
      type        = "AWS"
      identifiers = ["arn:${local.partition}:iam::${local.account_id}:root"]
    }
  }

  statement {
    sid = "CloudWatchLogs"
    actions = [
      "kms:Encrypt*",
      "kms:Decrypt*",
      "kms:ReEncrypt*",
      "kms:GenerateDataKey*",
      "kms:Describe*",
    ]
    resources = ["*"]

    principals {
      type        = "Service"
      identifiers = ["logs.${local.region}.amazonaws.com"]
    }

    condition {
      test     = "ArnLike"
      variable = "kms:EncryptionContext:aws:logs:arn"
      values   = ["arn:${local.partition}:logs:${local.region}:${local.account_id}:log-group:*"]
    }
  }
}

resource "aws_kms_key" "platform" {
  description             = "${local.name}: CloudWatch Logs, ECR and ECS Exec encryption"
  enable_key_rotation     = true
  deletion_window_in_days = 7
  policy                  = data.aws_iam_policy_document.platform_kms.json
}

resource "aws_kms_alias" "platform" {
  name          = "alias/${local.name}-platform"
  target_key_id = aws_kms_key.platform.key_id
}
