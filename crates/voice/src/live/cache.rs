//! The TTS audio cache: synthesized audio by (provider, voice, text), bounded in bytes,
//! least recently used out first. Greetings and fixed prompts are said once.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

#[derive(Debug)]
struct Inner {
    entries: HashMap<String, Arc<Vec<i16>>>,
    order: VecDeque<String>,
    bytes: usize,
}

#[derive(Debug, Clone)]
pub struct AudioCache {
    inner: Arc<Mutex<Inner>>,
    max_bytes: usize,
}

impl AudioCache {
    pub fn new(max_bytes: usize) -> Self {
        AudioCache { inner: Arc::new(Mutex::new(Inner { entries: HashMap::new(), order: VecDeque::new(), bytes: 0 })), max_bytes }
    }

    pub fn key(provider: &str, voice: Option<&str>, text: &str) -> String {
        format!("{provider}\u{1f}{}\u{1f}{}", voice.unwrap_or(""), text.trim())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn get(&self, key: &str) -> Option<Arc<Vec<i16>>> {
        let mut st = self.lock();
        let hit = st.entries.get(key).cloned();
        if hit.is_some() {
            st.order.retain(|k| k != key);
            st.order.push_back(key.to_owned());
        }
        hit
    }

    pub fn put(&self, key: String, samples: Vec<i16>) {
        let size = samples.len() * 2;
        if size > self.max_bytes {
            return;
        }
        let mut st = self.lock();
        if let Some(old) = st.entries.insert(key.clone(), Arc::new(samples)) {
            st.bytes -= old.len() * 2;
            st.order.retain(|k| k != &key);
        }
        st.bytes += size;
        st.order.push_back(key);
        while st.bytes > self.max_bytes {
            let Some(oldest) = st.order.pop_front() else { break };
            if let Some(v) = st.entries.remove(&oldest) {
                st.bytes -= v.len() * 2;
            }
        }
    }

    pub fn bytes(&self) -> usize {
        self.lock().bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_and_least_recently_used_first() {
        let c = AudioCache::new(100);
        c.put("a".into(), vec![0; 20]);
        c.put("b".into(), vec![0; 20]);
        assert!(c.get("a").is_some());
        c.put("c".into(), vec![0; 20]);
        assert!(c.bytes() <= 100);
        assert!(c.get("b").is_none(), "b was least recently used");
        assert!(c.get("a").is_some() && c.get("c").is_some());
        c.put("huge".into(), vec![0; 1000]);
        assert!(c.get("huge").is_none(), "larger than the whole cache");
    }
}
