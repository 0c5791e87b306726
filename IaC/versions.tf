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
