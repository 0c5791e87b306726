//! The two services of this system and how they find each other.
//!
//! On ECS each service is reached through its Service Connect client alias
//! (`http://service-b-sc:8202`); locally, on loopback. These values are the
//! defaults of `serve` and `local`, and the IaC contract test checks that the
//! Terraform in `IaC/` uses the same ones.

/// One of the two services.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KnownService {
    /// Service name: the `SERVICE_NAME` value and the REST path prefix.
    pub name: &'static str,
    /// Container port: the app listens here, and Service Connect's proxy
    /// takes it over in front of the app.
    pub port: u16,
    /// Service Connect client alias DNS name that peers call.
    pub service_connect_dns_name: &'static str,
}

pub const SERVICE_A: KnownService = KnownService {
    name: "service-a",
    port: 8201,
    service_connect_dns_name: "service-a-sc",
};

pub const SERVICE_B: KnownService = KnownService {
    name: "service-b",
    port: 8202,
    service_connect_dns_name: "service-b-sc",
};

pub const KNOWN_SERVICES: [KnownService; 2] = [SERVICE_A, SERVICE_B];

impl KnownService {
    /// The service with this name, if it is one of the two.
    pub fn named(name: &str) -> Option<Self> {
        KNOWN_SERVICES.into_iter().find(|s| s.name == name)
    }

    /// The URL peers use on ECS: the Service Connect alias and port.
    pub fn service_connect_url(&self) -> String {
        format!("http://{}:{}", self.service_connect_dns_name, self.port)
    }

    /// The service this one calls: the other one.
    pub fn peer_service(&self) -> Self {
        if *self == SERVICE_A {
            SERVICE_B
        } else {
            SERVICE_A
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_service_calls_the_other() {
        assert_eq!(SERVICE_A.peer_service(), SERVICE_B);
        assert_eq!(SERVICE_B.peer_service(), SERVICE_A);
        assert_eq!(
            SERVICE_A.peer_service().service_connect_url(),
            "http://service-b-sc:8202"
        );
        assert_eq!(
            SERVICE_B.peer_service().service_connect_url(),
            "http://service-a-sc:8201"
        );
    }
}
