//! URL scheme -> backend.

use std::sync::Arc;

use super::Backend;
use crate::error::{Error, ErrorKind, Result};
use crate::options::Options;
use crate::url::{BackendUrl, Scheme};

#[cfg(feature = "consul")]
use super::consul;
#[cfg(feature = "etcd")]
use super::etcd;
#[cfg(feature = "local")]
use super::local;
#[cfg(feature = "zookeeper")]
use super::zookeeper;

/// Builds the backend a URL names.
pub(crate) async fn connect(url: &BackendUrl, options: &Options) -> Result<Arc<dyn Backend>> {
    match url.scheme {
        #[cfg(feature = "local")]
        Scheme::File => Ok(Arc::new(local::LocalBackend::open(url, options).await?)),
        #[cfg(feature = "zookeeper")]
        Scheme::Zk => Ok(Arc::new(zookeeper::ZkBackend::open(url, options).await?)),

        #[cfg(feature = "etcd")]
        Scheme::Etcd { .. } => Ok(Arc::new(etcd::EtcdBackend::connect(url, options).await?)),
        #[cfg(feature = "consul")]
        Scheme::Consul { .. } => Ok(Arc::new(consul::ConsulBackend::connect(url, options).await?)),
        // Reached only in a build with some backend feature turned off.
        #[allow(unreachable_patterns)]
        other => {
            let _ = options;
            Err(Error::new(
                ErrorKind::InvalidArgument,
                format!("the {} backend is not available in this build of ballot", other.name()),
            ))
        }
    }
}
