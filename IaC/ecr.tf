################################################################################
# ECR repository for the one status-service image (both services run it).
# scripts/deploy.sh creates this first (-target), pushes an immutable tag,
# then applies the rest with -var image_tag=<that tag>.
################################################################################

resource "aws_ecr_repository" "app" {
  name                 = local.ecr_repository
  image_tag_mutability = "IMMUTABLE"
  force_delete         = var.ecr_force_delete

  image_scanning_configuration {
    scan_on_push = true
  }

  encryption_configuration {
    encryption_type = "KMS"
    kms_key         = aws_kms_key.platform.arn
  }
}

# One rule on all images. No "expire untagged" rule: the per-platform images of
# a multi-arch (buildx) push are untagged children of the tagged index, and
# expiring them would break pulls of a kept tag.
resource "aws_ecr_lifecycle_policy" "app" {
  repository = aws_ecr_repository.app.name

  policy = jsonencode({
    rules = [
      {
        rulePriority = 1
        description  = "Keep the last ${var.ecr_keep_images} images"
        selection = {
          tagStatus   = "any"
          countType   = "imageCountMoreThan"
          countNumber = var.ecr_keep_images
        }
        action = { type = "expire" }
      },
    ]
  })
}
