//! The registry of apps: finds them by id or key, and makes the next registry when an app is
//! added, replaced or removed.

use std::collections::HashMap;
use std::sync::Arc;

use super::{App, AppConfig};

/// Finds apps by id (HTTP API) and by key (WebSocket path, signatures).
///
/// A registry is a value: adding, replacing or removing an app makes a new one (see
/// [`AppRegistry::upserted`]), which the hub swaps in whole. A lookup never waits for a change.
#[derive(Clone, Debug, Default)]
pub struct AppRegistry {
    /// Every app, in config order, then in the order they were added.
    apps: Vec<Arc<App>>,
    by_id: HashMap<String, Arc<App>>,
    by_key: HashMap<String, Arc<App>>,
}

/// What [`AppRegistry::upserted`] makes: the new registry, the app as it now is, and the
/// version it replaced.
pub type Upserted = (AppRegistry, Arc<App>, Option<Arc<App>>);

/// Two apps share an id or a key.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("apps[{index}].{field}: {value:?} is used by another app")]
pub struct DuplicateApp {
    /// Index of the second app.
    pub index: usize,
    /// `id` or `key`.
    pub field: &'static str,
    /// The duplicated value.
    pub value: String,
}

impl AppRegistry {
    /// Builds the registry from validated configs.
    ///
    /// # Errors
    /// When two apps share an id or a key.
    pub fn new(configs: Vec<AppConfig>) -> Result<Self, DuplicateApp> {
        let mut reg = Self::default();
        for (index, config) in configs.into_iter().enumerate() {
            if reg.by_id.contains_key(&config.id) {
                return Err(DuplicateApp { index, field: "id", value: config.id });
            }
            if reg.by_key.contains_key(&config.key) {
                return Err(DuplicateApp { index, field: "key", value: config.key });
            }
            reg.insert(Arc::new(App::new(config)));
        }
        Ok(reg)
    }

    fn insert(&mut self, app: Arc<App>) {
        self.by_id.insert(app.config.id.clone(), Arc::clone(&app));
        self.by_key.insert(app.config.key.clone(), Arc::clone(&app));
        self.apps.push(app);
    }

    /// This registry with `config` added, or replacing the app with its id (the new version
    /// keeps the old one's channels and connections); with the version it replaced.
    ///
    /// # Errors
    /// When another app has the key (`index` is then the number of apps).
    pub fn upserted(&self, config: AppConfig) -> Result<Upserted, DuplicateApp> {
        if let Some(other) = self.by_key.get(&config.key)
            && other.config.id != config.id
        {
            return Err(DuplicateApp { index: self.apps.len(), field: "key", value: config.key });
        }
        let previous = self.by_id.get(&config.id).cloned();
        let app = Arc::new(match &previous {
            Some(prev) => App::succeeding(config, prev),
            None => App::new(config),
        });
        let mut next = self.without(app.config.id.as_str());
        next.insert(Arc::clone(&app));
        Ok((next, app, previous))
    }

    /// This registry without the app with `id`, and that app; `None` when there is none.
    pub fn removed(&self, id: &str) -> Option<(Self, Arc<App>)> {
        let app = self.by_id.get(id)?;
        Some((self.without(id), Arc::clone(app)))
    }

    fn without(&self, id: &str) -> Self {
        let mut next = Self::default();
        for app in self.apps.iter().filter(|a| a.config.id != id) {
            next.insert(Arc::clone(app));
        }
        next
    }

    /// The app with this id.
    pub fn by_id(&self, id: &str) -> Option<&Arc<App>> {
        self.by_id.get(id)
    }

    /// The app with this key.
    pub fn by_key(&self, key: &str) -> Option<&Arc<App>> {
        self.by_key.get(key)
    }

    /// Every app, in config order.
    pub fn iter(&self) -> impl Iterator<Item = &Arc<App>> {
        self.apps.iter()
    }

    /// The app at `index` of [`AppRegistry::iter`]'s order.
    pub fn get(&self, index: usize) -> Option<&Arc<App>> {
        self.apps.get(index)
    }

    /// Number of apps.
    pub fn len(&self) -> usize {
        self.apps.len()
    }

    /// Whether there is no app.
    pub fn is_empty(&self) -> bool {
        self.apps.is_empty()
    }
}
