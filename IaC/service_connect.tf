################################################################################
# Service Connect: Cloud Map namespace
################################################################################

resource "aws_service_discovery_http_namespace" "this" {
  name        = var.namespace_name
  description = "Service Connect namespace of ${local.name}"
}

################################################################################
# Service Connect TLS: AWS Private CA
#
# ECS issues each Service Connect proxy a certificate from this CA (rotated
# every 5 days) and the client proxies verify the server certificate against
# it. Requirements (AWS "Encrypt Amazon ECS Service Connect traffic"):
# - key EC_prime256v1 or RSA_2048;
# - short-lived certificate mode is supported and far cheaper;
# - the tag AmazonECSManaged = "true": the managed policy of the
#   infrastructure role only allows acm-pca actions on CAs with that tag;
# - the CA must be ACTIVE (root certificate installed) before a service uses
#   it.
# Set var.existing_pca_arn to use your own CA instead (it needs the same tag).
################################################################################

locals {
  pca_signing_algorithm = var.pca_key_algorithm == "RSA_2048" ? "SHA256WITHRSA" : "SHA256WITHECDSA"
}

resource "aws_acmpca_certificate_authority" "this" {
  count = local.create_pca ? 1 : 0

  type                            = "ROOT"
  usage_mode                      = "SHORT_LIVED_CERTIFICATE"
  permanent_deletion_time_in_days = 7

  certificate_authority_configuration {
    key_algorithm     = var.pca_key_algorithm
    signing_algorithm = local.pca_signing_algorithm

    subject {
      common_name  = "${local.name} Service Connect root CA"
      organization = local.name
    }
  }

  tags = {
    Name             = "${local.name}-service-connect"
    AmazonECSManaged = "true"
  }
}

# Activation: issue the root CA certificate from the CA's own CSR and install
# it. Until this is done the CA is PENDING_CERTIFICATE and cannot issue.
resource "aws_acmpca_certificate" "root" {
  count = local.create_pca ? 1 : 0

  certificate_authority_arn   = aws_acmpca_certificate_authority.this[0].arn
  certificate_signing_request = aws_acmpca_certificate_authority.this[0].certificate_signing_request
  signing_algorithm           = local.pca_signing_algorithm
  template_arn                = "arn:${local.partition}:acm-pca:::template/RootCACertificate/V1"

  validity {
    type  = "YEARS"
    value = 10
  }
}

resource "aws_acmpca_certificate_authority_certificate" "root" {
  count = local.create_pca ? 1 : 0

  certificate_authority_arn = aws_acmpca_certificate_authority.this[0].arn
  certificate               = aws_acmpca_certificate.root[0].certificate
  certificate_chain         = aws_acmpca_certificate.root[0].certificate_chain
}

################################################################################
# Service Connect TLS: ECS infrastructure role
# Trusts ecs.amazonaws.com and carries only the AWS managed policy made for
# this feature (acm-pca on CAs tagged AmazonECSManaged, secrets ecs-sc!*).
################################################################################

data "aws_iam_policy_document" "ecs_infrastructure_assume" {
  statement {
    sid     = "AllowAccessToECSForInfrastructureManagement"
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["ecs.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "service_connect_tls" {
  count = var.service_connect_tls_enabled ? 1 : 0

  name               = local.role_names.service_connect_tls
  description        = "ECS infrastructure role for Service Connect TLS (Private CA certificates, ecs-sc secrets)"
  assume_role_policy = data.aws_iam_policy_document.ecs_infrastructure_assume.json
  # The stack boundary (iam_boundary.tf): the deploy role may write this
  # role's policies only under it.
  permissions_boundary = aws_iam_policy.role_boundary.arn
}

resource "aws_iam_role_policy_attachment" "service_connect_tls" {
  count = var.service_connect_tls_enabled ? 1 : 0

  role       = aws_iam_role.service_connect_tls[0].name
  policy_arn = local.service_connect_tls_policy_arn
}

################################################################################
# Service Connect TLS: optional customer managed KMS key
# Encrypts the certificate secrets ECS keeps in Secrets Manager. Symmetric;
# the key policy gives the infrastructure role exactly the four actions AWS
# documents (the managed policy has no KMS permissions).
################################################################################

data "aws_iam_policy_document" "service_connect_kms" {
  #checkov:skip=CKV_AWS_111:This is a KMS key policy, not an IAM policy: Resource "*" means this key only, and the account-root kms:* statement is the AWS default that delegates key access to IAM.
  #checkov:skip=CKV_AWS_356:This is a KMS key policy: Resource "*" in a key policy refers to the key itself, no other resource can be named.
  #checkov:skip=CKV_AWS_109:This is a KMS key policy: the account-root statement is the AWS default key policy (without it the key becomes unmanageable); other principals get only the listed usage actions.
  count = local.create_sc_kms_key ? 1 : 0

  # Key policies always use Resource "*": it means "this key".
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
    sid = "ServiceConnectInfrastructureRole"
    actions = [
      "kms:Encrypt",
      "kms:Decrypt",
      "kms:GenerateDataKey",
      "kms:GenerateDataKeyPair",
    ]
    resources = ["*"]

    principals {
      type        = "AWS"
      identifiers = [aws_iam_role.service_connect_tls[0].arn]
    }
  }
}

resource "aws_kms_key" "service_connect" {
  count = local.create_sc_kms_key ? 1 : 0

  description              = "${local.name}: Service Connect TLS secrets"
  key_usage                = "ENCRYPT_DECRYPT"
  customer_master_key_spec = "SYMMETRIC_DEFAULT"
  enable_key_rotation      = true
  deletion_window_in_days  = 7
  policy                   = data.aws_iam_policy_document.service_connect_kms[0].json
}

resource "aws_kms_alias" "service_connect" {
  count = local.create_sc_kms_key ? 1 : 0

  name          = "alias/${local.name}-service-connect"
  target_key_id = aws_kms_key.service_connect[0].key_id
}
