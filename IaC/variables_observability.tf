################################################################################
# Observability inputs: the metric namespace and interval the services are
# given, the alarm thresholds and where alarm notifications go. Used by
# observability.tf and the task definitions in ecs.tf.
################################################################################

variable "metrics_namespace" {
  description = "CloudWatch namespace of the services' EMF metrics (METRICS_NAMESPACE). Empty means var.name, so two stacks in one account never mix their metrics. Same rule as the code: 1-255 of A-Z a-z 0-9 . - _ / # :, not starting with AWS/."
  type        = string
  default     = ""

  validation {
    condition     = var.metrics_namespace == "" || (can(regex("^[A-Za-z0-9._/#:-]{1,255}$", var.metrics_namespace)) && !startswith(var.metrics_namespace, "AWS/"))
    error_message = "metrics_namespace must be empty or 1-255 characters of A-Z a-z 0-9 . - _ / # :, not starting with AWS/ (the code refuses anything else)."
  }
}

variable "emf_interval" {
  description = "How often each service writes its EMF metric lines (EMF_INTERVAL), whole seconds from 10s to 60s. The alarms evaluate 60-second periods: a longer interval would leave periods without data."
  type        = string
  default     = "60s"

  validation {
    condition     = contains([for seconds in range(10, 61, 1) : "${seconds}s"], var.emf_interval)
    error_message = "emf_interval must be whole seconds from 10s to 60s, written like 60s."
  }
}

variable "alarm_5xx_rate_percent" {
  description = "Alarm when more than this percentage of a service's requests (EMF Errors / Requests, all routes) get a 5xx-class answer, in 3 of 5 minutes."
  type        = number
  default     = 5

  validation {
    condition     = var.alarm_5xx_rate_percent > 0 && var.alarm_5xx_rate_percent <= 100
    error_message = "alarm_5xx_rate_percent must be above 0 and at most 100."
  }
}

variable "alarm_p99_latency_ms" {
  description = "Alarm when the p99 latency (EMF Latency, 2xx answers) of one of a service's client-facing unary routes exceeds this many milliseconds, in 3 of 5 minutes."
  type        = number
  default     = 500

  validation {
    condition     = var.alarm_p99_latency_ms >= 1 && var.alarm_p99_latency_ms <= 60000
    error_message = "alarm_p99_latency_ms must be between 1 and 60000."
  }
}

variable "alarm_peer_errors_per_minute" {
  description = "Alarm when a service's failed peer calls (EMF PeerErrors: UNAVAILABLE or DEADLINE_EXCEEDED) reach this many in a minute, in 3 of 5 minutes."
  type        = number
  default     = 5

  validation {
    condition     = var.alarm_peer_errors_per_minute >= 1 && floor(var.alarm_peer_errors_per_minute) == var.alarm_peer_errors_per_minute
    error_message = "alarm_peer_errors_per_minute must be a whole number of at least 1."
  }
}

variable "alarm_unhealthy_hosts" {
  description = "Alarm when this many targets of a service's REST target group are unhealthy (ALB UnHealthyHostCount, Minimum over the ALB's nodes), in 3 of 5 minutes."
  type        = number
  default     = 1

  validation {
    condition     = var.alarm_unhealthy_hosts >= 1 && floor(var.alarm_unhealthy_hosts) == var.alarm_unhealthy_hosts
    error_message = "alarm_unhealthy_hosts must be a whole number of at least 1."
  }
}

variable "alarm_notifications" {
  description = "Where alarm and OK notifications go: an existing standard SNS topic (topic_arn), or a topic this configuration creates (create_topic, with an optional email subscription), or nowhere (all empty: the alarms still show on the dashboard)."
  type = object({
    topic_arn    = optional(string, "")
    create_topic = optional(bool, false)
    email        = optional(string, "")
  })
  default = {
    topic_arn    = ""
    create_topic = false
    email        = ""
  }

  validation {
    condition     = var.alarm_notifications.topic_arn == "" || can(regex("^arn:aws[a-z-]*:sns:[a-z0-9-]+:[0-9]{12}:[A-Za-z0-9_-]{1,256}$", var.alarm_notifications.topic_arn))
    error_message = "alarm_notifications.topic_arn must be empty or an SNS topic ARN."
  }

  validation {
    condition     = !(var.alarm_notifications.create_topic && var.alarm_notifications.topic_arn != "")
    error_message = "alarm_notifications: set topic_arn (an existing topic) or create_topic, not both."
  }

  validation {
    condition     = var.alarm_notifications.email == "" || (var.alarm_notifications.create_topic && can(regex("^[^@\\s]+@[^@\\s]+\\.[^@\\s]+$", var.alarm_notifications.email)))
    error_message = "alarm_notifications.email must be empty, or an email address together with create_topic = true (subscribe to an existing topic where it is managed)."
  }
}
