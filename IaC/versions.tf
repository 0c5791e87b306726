################################################################################
# Terraform and provider requirements
################################################################################

terraform {
  required_version = ">= 1.5.0"

  required_providers {
    aws = {
      source = "hashicorp/aws"
      # 5.41 is the first release with the Service Connect `tls` block and the
      # required `aws_pca_authority_arn`; the configuration is written and
      # schema-checked against the 6.x provider.
      version = ">= 6.0, < 7.0"
    }
    tls = {
      source  = "hashicorp/tls"
      version = ">= 4.0, < 5.0"
    }
  }
}

################################################################################
# Providers
################################################################################

provider "aws" {
  region = var.aws_region

  default_tags {
    tags = local.tags
  }
}

# The same account and region without default_tags, for resources whose
# ARNs carry no name (scalable targets: autoscaling.tf). Tagging them would
# need a tag permission the deploy role could use on any such resource in
# the account (issue 21, point 8); untagged, it needs none.
provider "aws" {
  alias  = "untagged"
  region = var.aws_region
}
