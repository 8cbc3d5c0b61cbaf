//! A compact HNSW graph (Malkov and Yashunin, "Efficient and robust approximate nearest neighbor
//! search using Hierarchical Navigable Small World graphs", 2016) over unit vectors with cosine
//! distance.
//!
//! Compact means: vectors live in one flat `Vec<f32>` (each stored once), layer-0 links in one flat
//! `Vec<u32>` with a fixed number of slots per node, and the few upper-layer links per node in a
//! side table. At one million 384-dimensional vectors that is about 1.5 GB of vectors and 0.13 GB
//! of links, where a graph of reference-counted neighbour objects needs twice as much.
//!
//! The search takes an optional filter, applied to results only: traversal goes through filtered
//! nodes, so a filter never disconnects the graph.
//!
//! Pruning full neighbour lists can leave a node with no link in, and identical vectors (a
//! passage repeated across documents) can fill each other's lists and close on themselves; such
//! nodes are never found. After every bulk insertion [`Graph::reconnect`] walks layer 0 from
//! the entry point and links in every node the walk missed.

use std::cmp::Ordering;
use std::collections::{BinaryHeap, HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};

const NONE: u32 = u32::MAX;
const MAX_LEVEL: usize = 16;

/// Distance between unit vectors: `1 - dot`, clamped at zero.
/// Layer-0 search starts from this many nodes of layer 1 nearest the query rather than from
/// one, so that a query whose greedy descent ends among a crowd of near-duplicates still starts
/// from nodes elsewhere.
const ENTRY_BEAM: usize = 32;

/// A vector this close (cosine distance; similarity 0.97) to a linked node becomes that node's
/// alias instead of a node with links of its own. Near-duplicate passages (pasted boilerplate, repeated
/// disclaimers) otherwise fill each other's link lists and the search beam, and a search that
/// enters such a crowd cannot leave it: issue 15 measured passages that exact search ranked
/// first missed by graph search at any beam width.
const ALIAS_DISTANCE: f32 = 0.03;

/// At most this many aliases share a node; the next near-duplicate is linked as a node (and
/// gathers aliases of its own), so scoring a node's aliases stays cheap.
const MAX_ALIASES: usize = 64;

pub fn distance(a: &[f32], b: &[f32]) -> f32 {
    (1.0 - crate::embed::dot(a, b)).max(0.0)
}

/// A hasher for node ids (already well spread): a multiplicative mix, no SipHash.
#[derive(Default)]
pub struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 ^ u64::from(*b)).wrapping_mul(0x100_0000_01B3);
        }
    }
    fn write_u32(&mut self, n: u32) {
        self.0 = u64::from(n).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

type Visited = HashSet<u32, BuildHasherDefault<IdHasher>>;

/// A candidate: distance and node, ordered by distance.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Near(f32, u32);

impl Eq for Near {}

impl PartialOrd for Near {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Near {
    fn cmp(&self, other: &Self) -> Ordering {
        self.0.total_cmp(&other.0).then(self.1.cmp(&other.1))
    }
}

/// The graph. Node ids are dense, in insertion order.
#[derive(Debug, Clone)]
pub struct Graph {
    dimension: usize,
    /// Links per node on upper layers; twice as many on layer 0.
    m: usize,
    ef_construction: usize,
    level_factor: f64,
    vectors: Vec<f32>,
    levels: Vec<u8>,
    /// `2m` slots per node, `NONE` where empty.
    links0: Vec<u32>,
    /// For a node above layer 0: its slot in `upper`, which holds `m` slots per upper layer.
    upper_slot: Vec<u32>,
    upper: Vec<Vec<u32>>,
    /// For a near-duplicate: the node it is an alias of (`NONE` for a linked node). An alias has
    /// no links of its own; a search that visits its node scores it there.
    alias_of: Vec<u32>,
    /// The aliases of each node that has any.
    aliases: HashMap<u32, Vec<u32>>,
    entry: u32,
    max_level: usize,
    rng: u64,
}

impl Graph {
    pub fn new(dimension: usize, m: usize, ef_construction: usize, capacity: usize) -> Self {
        Self {
            dimension,
            m,
            ef_construction,
            level_factor: 1.0 / (m.max(2) as f64).ln(),
            vectors: Vec::with_capacity(capacity * dimension),
            levels: Vec::with_capacity(capacity),
            links0: Vec::with_capacity(capacity * 2 * m),
            upper_slot: Vec::with_capacity(capacity),
            upper: Vec::new(),
            alias_of: Vec::with_capacity(capacity),
            aliases: HashMap::new(),
            entry: NONE,
            max_level: 0,
            rng: 0x2545_F491_4F6C_DD1D,
        }
    }

    pub fn len(&self) -> usize {
        self.levels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.levels.is_empty()
    }

    /// Writes the graph's structure (levels, links, entry point, generator state) without its
    /// vectors. [`Graph::read_structure`] over the same vectors, in the same order, gives back an
    /// identical graph.
    pub fn write_structure(&self, out: &mut impl std::io::Write) -> std::io::Result<()> {
        let u32s = |out: &mut dyn std::io::Write, v: &[u32]| -> std::io::Result<()> {
            let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
            out.write_all(&bytes)
        };
        for x in [self.dimension, self.m, self.ef_construction, self.len(), self.upper.len(), self.max_level] {
            out.write_all(&(x as u64).to_le_bytes())?;
        }
        out.write_all(&self.entry.to_le_bytes())?;
        out.write_all(&self.rng.to_le_bytes())?;
        out.write_all(&self.levels)?;
        u32s(out, &self.links0)?;
        u32s(out, &self.upper_slot)?;
        for links in &self.upper {
            u32s(out, links)?;
        }
        u32s(out, &self.alias_of)?;
        Ok(())
    }

    /// Rebuilds a graph from [`Graph::write_structure`]'s bytes and the vectors it was built
    /// over (concatenated, in node order). Refuses bytes that do not describe a graph of exactly
    /// these vectors.
    pub fn read_structure(bytes: &[u8], vectors: Vec<f32>) -> Result<Self, String> {
        let mut at = 0usize;
        let mut take = |n: usize| -> Result<&[u8], String> {
            let part = bytes.get(at..at + n).ok_or("the graph file is truncated")?;
            at += n;
            Ok(part)
        };
        let mut header = [0usize; 6];
        for h in &mut header {
            *h = usize::try_from(u64::from_le_bytes(take(8)?.try_into().map_err(|_| "bad header")?))
                .map_err(|_| "bad header")?;
        }
        let [dimension, m, ef_construction, n, upper_count, max_level] = header;
        if dimension == 0 || vectors.len() != n * dimension || m == 0 || upper_count > n || max_level > MAX_LEVEL {
            return Err("the graph file does not match the vectors".into());
        }
        let entry = u32::from_le_bytes(take(4)?.try_into().map_err(|_| "bad header")?);
        let rng = u64::from_le_bytes(take(8)?.try_into().map_err(|_| "bad header")?);
        let levels = take(n)?.to_vec();
        let mut read_u32s = |count: usize| -> Result<Vec<u32>, String> {
            Ok(take(count * 4)?.chunks_exact(4).map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect())
        };
        let links0 = read_u32s(n * 2 * m)?;
        let upper_slot = read_u32s(n)?;
        let mut upper = Vec::with_capacity(upper_count);
        for (node, &slot) in upper_slot.iter().enumerate() {
            if slot != NONE {
                if slot as usize != upper.len() {
                    return Err("the graph file's upper layers are out of order".into());
                }
                upper.push(read_u32s(levels[node] as usize * m)?);
            }
        }
        let alias_of = read_u32s(n)?;
        let valid = |x: &u32| *x == NONE || (*x as usize) < n;
        let mut aliases: HashMap<u32, Vec<u32>> = HashMap::new();
        for (node, &of) in alias_of.iter().enumerate() {
            if of != NONE {
                if !valid(&of) || alias_of[of as usize] != NONE {
                    return Err("the graph file's aliases are inconsistent".into());
                }
                aliases.entry(of).or_default().push(node as u32);
            }
        }
        if upper.len() != upper_count
            || at != bytes.len()
            || !links0.iter().all(valid)
            || !upper.iter().flatten().all(valid)
            || (n > 0 && (entry as usize) >= n)
        {
            return Err("the graph file is inconsistent".into());
        }
        Ok(Self {
            dimension,
            m,
            ef_construction,
            level_factor: 1.0 / (m.max(2) as f64).ln(),
            vectors,
            levels,
            links0,
            upper_slot,
            upper,
            alias_of,
            aliases,
            entry,
            max_level,
            rng,
        })
    }

    /// The stored vector of a node.
    pub fn vector(&self, node: usize) -> &[f32] {
        &self.vectors[node * self.dimension..(node + 1) * self.dimension]
    }

    fn random_level(&mut self) -> usize {
        // xorshift64*
        self.rng ^= self.rng >> 12;
        self.rng ^= self.rng << 25;
        self.rng ^= self.rng >> 27;
        let r = self.rng.wrapping_mul(0x2545_F491_4F6C_DD1D);
        let u = ((r >> 11) as f64 / (1u64 << 53) as f64).max(1e-12);
        ((-u.ln() * self.level_factor) as usize).min(MAX_LEVEL)
    }

    fn links(&self, node: u32, layer: usize) -> &[u32] {
        let node = node as usize;
        if layer == 0 {
            let w = 2 * self.m;
            let all = &self.links0[node * w..(node + 1) * w];
            let n = all.iter().position(|&x| x == NONE).unwrap_or(w);
            &all[..n]
        } else {
            let slot = self.upper_slot[node] as usize;
            let all = &self.upper[slot][(layer - 1) * self.m..layer * self.m];
            let n = all.iter().position(|&x| x == NONE).unwrap_or(self.m);
            &all[..n]
        }
    }

    fn set_links(&mut self, node: u32, layer: usize, links: &[u32]) {
        let node = node as usize;
        let (slots, width) = if layer == 0 {
            let w = 2 * self.m;
            (&mut self.links0[node * w..(node + 1) * w], w)
        } else {
            let slot = self.upper_slot[node] as usize;
            let m = self.m;
            (&mut self.upper[slot][(layer - 1) * m..layer * m], m)
        };
        let n = links.len().min(width);
        slots[..n].copy_from_slice(&links[..n]);
        slots[n..].fill(NONE);
    }

    fn dist_to(&self, query: &[f32], node: u32) -> f32 {
        distance(query, self.vector(node as usize))
    }

    /// The closest node to `query` on `layer` by greedy descent from `from`.
    fn greedy(&self, query: &[f32], mut from: u32, layer: usize) -> u32 {
        let mut best = self.dist_to(query, from);
        loop {
            let mut moved = false;
            for &n in self.links(from, layer) {
                let d = self.dist_to(query, n);
                if d < best {
                    best = d;
                    from = n;
                    moved = true;
                }
            }
            if !moved {
                return from;
            }
        }
    }

    /// The `ef` nearest nodes to `query` on `layer` reachable from `entries`, closest first. With
    /// a filter, only nodes it accepts are returned, but traversal goes through all nodes. With
    /// `aliases`, each visited node's near-duplicates are scored with it (searches); without,
    /// only linked nodes are returned (construction links nodes to linked nodes only).
    fn search_layer(
        &self,
        query: &[f32],
        entries: &[u32],
        ef: usize,
        layer: usize,
        filter: Option<&dyn Fn(u32) -> bool>,
        aliases: bool,
    ) -> Vec<Near> {
        let accept = |n: u32| filter.is_none_or(|f| f(n));
        let mut visited = Visited::default();
        let mut candidates = BinaryHeap::new(); // min-heap through Reverse
        let mut results: BinaryHeap<Near> = BinaryHeap::new(); // max-heap: the worst on top
        // Aliases are kept apart: they are scored, never explored, so they must not take the
        // beam's places and end the walk early.
        let mut alias_results: BinaryHeap<Near> = BinaryHeap::new();
        let offer = |results: &mut BinaryHeap<Near>, near: Near| {
            if results.len() < ef || results.peek().is_some_and(|w| near < *w) {
                results.push(near);
                if results.len() > ef {
                    results.pop();
                }
            }
        };
        let offer_aliases = |results: &mut BinaryHeap<Near>, node: u32| {
            if !aliases {
                return;
            }
            for &a in self.aliases.get(&node).map_or(&[][..], Vec::as_slice) {
                if accept(a) {
                    offer(results, Near(self.dist_to(query, a), a));
                }
            }
        };
        for &entry in entries {
            if !visited.insert(entry) {
                continue;
            }
            let d = self.dist_to(query, entry);
            candidates.push(std::cmp::Reverse(Near(d, entry)));
            if accept(entry) {
                offer(&mut results, Near(d, entry));
            }
            offer_aliases(&mut alias_results, entry);
        }
        while let Some(std::cmp::Reverse(Near(d, node))) = candidates.pop() {
            if results.len() >= ef && results.peek().is_some_and(|w| d > w.0) {
                break;
            }
            for &n in self.links(node, layer) {
                if !visited.insert(n) {
                    continue;
                }
                let dn = self.dist_to(query, n);
                let worst = results.peek().map_or(f32::INFINITY, |w| w.0);
                if results.len() < ef || dn < worst {
                    candidates.push(std::cmp::Reverse(Near(dn, n)));
                    if accept(n) {
                        offer(&mut results, Near(dn, n));
                    }
                }
                // An alias is within sqrt(2 * ALIAS_DISTANCE) of its node in Euclidean terms
                // (unit vectors), so it can beat the worst result only when its node is not
                // farther than that bound allows.
                if results.len() < ef || dn.max(0.0).sqrt() < worst.max(0.0).sqrt() + ALIAS_DISTANCE.sqrt() {
                    offer_aliases(&mut alias_results, n);
                }
            }
        }
        let mut out = results.into_vec();
        out.extend(alias_results.into_vec());
        out.sort();
        out.truncate(ef);
        out
    }

    /// Picks up to `m` neighbours from `candidates` (closest first) with the paper's heuristic:
    /// a candidate is kept if it is closer to the new node than to every neighbour kept so far,
    /// which spreads links in different directions; the rest fill any remaining slots.
    fn select(&self, candidates: &[Near], m: usize) -> Vec<u32> {
        let mut kept: Vec<u32> = Vec::with_capacity(m);
        let mut pruned = Vec::new();
        for &Near(d, c) in candidates {
            if kept.len() >= m {
                break;
            }
            let diverse = kept.iter().all(|&k| distance(self.vector(c as usize), self.vector(k as usize)) > d);
            if diverse {
                kept.push(c);
            } else {
                pruned.push(c);
            }
        }
        for c in pruned {
            if kept.len() >= m {
                break;
            }
            kept.push(c);
        }
        kept
    }

    /// Adds a vector (unit length) and links it into the graph. Returns its node id.
    pub fn insert(&mut self, vector: &[f32]) -> u32 {
        let node = self.push(vector);
        let plan = self.plan(node);
        self.link(node, plan);
        node
    }

    /// Adds many vectors. Batches of new nodes find their neighbours in parallel against the
    /// graph as it stood before the batch (read-only), then are linked one by one; a node does
    /// not see the others of its own batch while searching, which costs no measurable recall at
    /// this batch size.
    pub fn insert_many(&mut self, vectors: &[&[f32]], threads: usize) {
        const BATCH: usize = 256;
        let threads = threads.max(1);
        let mut start = 0;
        // The first nodes go in one by one, so the graph has a body to search.
        while start < vectors.len() && (self.len() < 2 * BATCH || threads == 1) {
            self.insert(vectors[start]);
            start += 1;
        }
        while start < vectors.len() {
            let end = (start + BATCH).min(vectors.len());
            let nodes: Vec<u32> = vectors[start..end].iter().map(|v| self.push(v)).collect();
            let graph = &*self;
            let plans: Vec<Vec<Vec<Near>>> = std::thread::scope(|scope| {
                let per = nodes.len().div_ceil(threads);
                let handles: Vec<_> = nodes
                    .chunks(per)
                    .map(|part| scope.spawn(move || part.iter().map(|&n| graph.plan(n)).collect::<Vec<_>>()))
                    .collect();
                handles.into_iter().flat_map(|h| h.join().unwrap_or_default()).collect()
            });
            for (node, plan) in nodes.into_iter().zip(plans) {
                self.link(node, plan);
            }
            start = end;
        }
        self.reconnect();
    }

    /// Makes every node reachable on layer 0 from the entry point again, and returns how many
    /// nodes needed a new link. Re-selecting a full neighbour list drops the farthest link, which
    /// can be a node's last way in: such a node is never found by any search (0.7% of the nodes
    /// at 100,000 generated chunks before this pass). Each node the walk from the entry does not
    /// reach is linked from its nearest reached node, replacing a link whose target keeps
    /// another way in, or else from the nearest reached node with a free slot; what it links to
    /// then counts as reached through it.
    pub fn reconnect(&mut self) -> usize {
        let n = self.len();
        if n < 2 || self.entry == NONE {
            return 0;
        }
        let mut linked = 0;
        // A replaced link can cut off a node reached before (its other way in came from a node
        // that was cut off itself), so walk again while that helps.
        let mut left = usize::MAX;
        for _ in 0..8 {
            let mut reached = self.reached_from_entry();
            let cut_off = reached.iter().filter(|r| !**r).count();
            if cut_off == 0 || cut_off >= left {
                break;
            }
            left = cut_off;
            // Links in from reached nodes: a target keeping one after a replacement stays reached.
            let mut indegree = vec![0u32; n];
            for from in (0..n as u32).filter(|&f| reached[f as usize]) {
                for &to in self.links(from, 0) {
                    indegree[to as usize] += 1;
                }
            }
            for node in 0..n {
                if reached[node] || self.alias_of[node] != NONE {
                    continue;
                }
                let node = node as u32;
                let query = self.vector(node as usize).to_vec();
                // Links come from linked nodes only, never from an alias.
                let accept = |c: u32| reached[c as usize] && self.alias_of[c as usize] == NONE;
                let near = self.search(&query, 32, 64, Some(&accept));
                let mut kept = near.into_iter().any(|(from, _)| self.link_in(from, node, &mut indegree));
                if !kept {
                    // Every near list is full of nodes with no other way in: the nearest reached
                    // node with a free slot takes the link.
                    let free = |c: u32| {
                        reached[c as usize] && self.alias_of[c as usize] == NONE && self.links(c, 0).len() < 2 * self.m
                    };
                    let found = self.search(&query, 1, 256, Some(&free));
                    kept = found.first().is_some_and(|&(from, _)| self.link_in(from, node, &mut indegree));
                }
                if kept {
                    linked += 1;
                    self.mark_reached(node, &mut reached);
                }
            }
        }
        linked
    }

    /// Which nodes a walk over layer 0 from the entry point reaches.
    fn reached_from_entry(&self) -> Vec<bool> {
        let mut reached = vec![false; self.len()];
        if self.entry != NONE {
            self.mark_reached(self.entry, &mut reached);
        }
        // An alias is reached with its node.
        for (node, &of) in self.alias_of.iter().enumerate() {
            if of != NONE {
                reached[node] = reached[of as usize];
            }
        }
        reached
    }

    /// Marks every node reachable on layer 0 from `start`.
    fn mark_reached(&self, start: u32, reached: &mut [bool]) {
        let mut stack = vec![start];
        reached[start as usize] = true;
        while let Some(node) = stack.pop() {
            for &next in self.links(node, 0) {
                if !std::mem::replace(&mut reached[next as usize], true) {
                    stack.push(next);
                }
            }
        }
    }

    /// Adds a layer-0 link `from -> to`; a full list gives up its farthest link whose target
    /// has another link in from a reached node. False when every target would be left without
    /// one.
    fn link_in(&mut self, from: u32, to: u32, indegree: &mut [u32]) -> bool {
        let mut links = self.links(from, 0).to_vec();
        if links.contains(&to) {
            return true;
        }
        if links.len() < 2 * self.m {
            links.push(to);
        } else {
            let base = self.vector(from as usize);
            let victim = (0..links.len()).filter(|&i| indegree[links[i] as usize] >= 2).max_by(|&a, &b| {
                distance(base, self.vector(links[a] as usize))
                    .total_cmp(&distance(base, self.vector(links[b] as usize)))
            });
            let Some(i) = victim else {
                return false;
            };
            indegree[links[i] as usize] = indegree[links[i] as usize].saturating_sub(1);
            links[i] = to;
        }
        indegree[to as usize] += 1;
        self.set_links(from, 0, &links);
        true
    }

    /// Stores a vector and its level; the node is not linked yet.
    fn push(&mut self, vector: &[f32]) -> u32 {
        debug_assert_eq!(vector.len(), self.dimension);
        let node = u32::try_from(self.levels.len()).unwrap_or(NONE - 1);
        let level = self.random_level();
        self.vectors.extend_from_slice(vector);
        self.levels.push(u8::try_from(level).unwrap_or(u8::MAX));
        self.links0.extend(std::iter::repeat_n(NONE, 2 * self.m));
        self.alias_of.push(NONE);
        if level > 0 {
            self.upper_slot.push(u32::try_from(self.upper.len()).unwrap_or(NONE));
            self.upper.push(vec![NONE; level * self.m]);
        } else {
            self.upper_slot.push(NONE);
        }
        node
    }

    /// The neighbour candidates of a pushed node on each of its layers (top first), from the
    /// linked graph. Read-only.
    fn plan(&self, node: u32) -> Vec<Vec<Near>> {
        if self.entry == NONE {
            return Vec::new();
        }
        let level = self.levels[node as usize] as usize;
        let query = self.vector(node as usize);
        let mut entry = self.entry;
        for layer in (level + 1..=self.max_level).rev() {
            entry = self.greedy(query, entry, layer);
        }
        let mut plan = Vec::new();
        for layer in (0..=level.min(self.max_level)).rev() {
            let found = self.search_layer(query, &[entry], self.ef_construction, layer, None, false);
            if let Some(closest) = found.first() {
                entry = closest.1;
            }
            plan.push(found);
        }
        plan
    }

    /// Links a pushed node to the neighbours its plan found, and them back to it.
    fn link(&mut self, node: u32, plan: Vec<Vec<Near>>) {
        let level = self.levels[node as usize] as usize;
        if self.entry == NONE {
            self.entry = node;
            self.max_level = level;
            return;
        }
        // A near-duplicate of a linked node with room for one more alias joins it instead.
        if let Some(&Near(d, closest)) = plan.last().and_then(|found| found.first())
            && d < ALIAS_DISTANCE
            && self.alias_of[closest as usize] == NONE
            && self.aliases.get(&closest).is_none_or(|a| a.len() < MAX_ALIASES)
        {
            self.alias_of[node as usize] = closest;
            self.aliases.entry(closest).or_default().push(node);
            return;
        }
        // The plan covers the layers from its top down to 0 as the graph stood when it was made.
        let top = plan.len().saturating_sub(1);
        for (i, found) in plan.into_iter().enumerate() {
            let layer = top - i;
            let chosen = self.select(&found, self.m);
            self.set_links(node, layer, &chosen);
            let capacity = if layer == 0 { 2 * self.m } else { self.m };
            for &c in &chosen {
                let mut links = self.links(c, layer).to_vec();
                links.push(node);
                if links.len() <= capacity {
                    self.set_links(c, layer, &links);
                } else {
                    // Full: re-select among the old links and the new node.
                    let base = self.vector(c as usize).to_vec();
                    let mut scored: Vec<Near> = links.iter().map(|&l| Near(self.dist_to(&base, l), l)).collect();
                    scored.sort();
                    let kept = self.select(&scored, capacity);
                    self.set_links(c, layer, &kept);
                }
            }
        }
        if level > self.max_level {
            self.max_level = level;
            self.entry = node;
        }
    }

    /// The `k` nearest nodes to `query` that `filter` accepts, closest first, searching layer 0
    /// with a beam of `ef`.
    pub fn search(&self, query: &[f32], k: usize, ef: usize, filter: Option<&dyn Fn(u32) -> bool>) -> Vec<(u32, f32)> {
        if self.entry == NONE {
            return Vec::new();
        }
        let mut entry = self.entry;
        for layer in (2..=self.max_level).rev() {
            entry = self.greedy(query, entry, layer);
        }
        let entries: Vec<u32> = if self.max_level >= 1 {
            self.search_layer(query, &[entry], ENTRY_BEAM, 1, None, false).into_iter().map(|Near(_, n)| n).collect()
        } else {
            vec![entry]
        };
        self.search_layer(query, &entries, ef.max(k), 0, filter, true)
            .into_iter()
            .take(k)
            .map(|Near(d, n)| (n, d))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unit(seed: u64, dimension: usize) -> Vec<f32> {
        let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        let mut v: Vec<f32> = (0..dimension)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                (s % 2000) as f32 / 1000.0 - 1.0
            })
            .collect();
        let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        v.iter_mut().for_each(|x| *x /= n);
        v
    }

    fn exact(vectors: &[Vec<f32>], q: &[f32], k: usize, keep: &dyn Fn(u32) -> bool) -> Vec<u32> {
        let mut all: Vec<(f32, u32)> = vectors
            .iter()
            .enumerate()
            .filter(|(i, _)| keep(*i as u32))
            .map(|(i, v)| (distance(q, v), i as u32))
            .collect();
        all.sort_by(|a, b| a.0.total_cmp(&b.0));
        all.into_iter().take(k).map(|x| x.1).collect()
    }

    #[test]
    fn search_finds_the_true_neighbours_with_and_without_a_filter() {
        let vectors: Vec<Vec<f32>> = (0..3000).map(|i| unit(i, 32)).collect();
        let mut g = Graph::new(32, 16, 100, vectors.len());
        let refs: Vec<&[f32]> = vectors.iter().map(Vec::as_slice).collect();
        g.insert_many(&refs, 2);
        assert_eq!(g.len(), 3000);
        let (mut found, mut total) = (0, 0);
        let even = |n: u32| n.is_multiple_of(2);
        for q in 0..50u64 {
            let query = unit(10_000 + q, 32);
            for filter in [None, Some(&even as &dyn Fn(u32) -> bool)] {
                let truth = exact(&vectors, &query, 10, &|n| filter.is_none_or(|f| f(n)));
                let got: Vec<u32> = g.search(&query, 10, 64, filter).into_iter().map(|x| x.0).collect();
                assert!(got.iter().all(|n| filter.is_none_or(|f| f(*n))), "the filter holds");
                found += truth.iter().filter(|t| got.contains(t)).count();
                total += truth.len();
            }
        }
        let recall = found as f64 / total as f64;
        assert!(recall >= 0.95, "recall@10 {recall}");
    }

    fn unreached(g: &Graph) -> usize {
        g.reached_from_entry().iter().filter(|r| !**r).count()
    }

    #[test]
    fn every_node_stays_reachable_around_repeated_vectors() {
        // Repeated passages (boilerplate) give identical vectors, and chunks built from them sit
        // around that point: full neighbour lists there drop nodes' last links in.
        let hub = unit(7, 32);
        let vectors: Vec<Vec<f32>> = (0..3000u64)
            .map(|i| match i % 10 {
                0 => hub.clone(),
                1..=6 => {
                    let r = unit(50_000 + i, 32);
                    let mut v: Vec<f32> = hub.iter().zip(&r).map(|(h, x)| 0.7 * h + 0.3 * x).collect();
                    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
                    v.iter_mut().for_each(|x| *x /= n);
                    v
                }
                _ => unit(i, 32),
            })
            .collect();
        let mut g = Graph::new(32, 8, 64, vectors.len());
        for v in &vectors {
            g.insert(v);
        }
        let before = unreached(&g);
        assert!(before > 0, "one-by-one insertion leaves nodes without a way in here");
        assert!(g.reconnect() > 0);
        assert_eq!(unreached(&g), 0, "{before} nodes were cut off");
        // Bulk insertion reconnects by itself.
        let mut g = Graph::new(32, 8, 64, vectors.len());
        let refs: Vec<&[f32]> = vectors.iter().map(Vec::as_slice).collect();
        g.insert_many(&refs, 2);
        assert_eq!(unreached(&g), 0);
    }

    #[test]
    fn a_node_finds_itself_and_an_empty_graph_finds_nothing() {
        let g = Graph::new(8, 8, 50, 0);
        assert!(g.search(&unit(1, 8), 5, 10, None).is_empty());
        let mut g = Graph::new(8, 8, 50, 10);
        for i in 0..200 {
            g.insert(&unit(i, 8));
        }
        let hit = g.search(&unit(42, 8), 1, 32, None);
        assert_eq!(hit[0].0, 42);
        assert!(hit[0].1 < 1e-5);
    }

    #[test]
    fn a_saved_structure_restores_the_same_graph_and_a_damaged_one_is_refused() -> Result<(), Box<dyn std::error::Error>>
    {
        // Every third vector repeats one of seven, so the structure holds aliases too.
        let vectors: Vec<Vec<f32>> = (0..1500).map(|i| unit(if i % 3 == 0 { i % 7 } else { i }, 16)).collect();
        let refs: Vec<&[f32]> = vectors.iter().map(Vec::as_slice).collect();
        let mut g = Graph::new(16, 8, 64, vectors.len());
        g.insert_many(&refs, 2);
        assert!(g.aliases.values().map(Vec::len).sum::<usize>() > 300, "repeated vectors are aliases");
        let mut bytes = Vec::new();
        g.write_structure(&mut bytes)?;
        let flat: Vec<f32> = vectors.iter().flatten().copied().collect();
        let mut restored = Graph::read_structure(&bytes, flat.clone())?;
        for q in (0..20).map(|q| 50_000 + q).chain(0..7) {
            let query = unit(q, 16);
            assert_eq!(g.search(&query, 10, 40, None), restored.search(&query, 10, 40, None));
        }
        // Inserting after a restore continues exactly as the original would.
        let extra = unit(99_999, 16);
        assert_eq!(g.insert(&extra), restored.insert(&extra));
        assert_eq!(g.search(&extra, 5, 40, None), restored.search(&extra, 5, 40, None));

        assert!(Graph::read_structure(&bytes[..bytes.len() - 1], flat.clone()).is_err(), "truncated");
        assert!(Graph::read_structure(&bytes, flat[..flat.len() - 16].to_vec()).is_err(), "other vectors");
        let mut corrupt = bytes.clone();
        let last = corrupt.len() - 4;
        corrupt[last..].copy_from_slice(&7_000_000u32.to_le_bytes());
        assert!(Graph::read_structure(&corrupt, flat).is_err(), "a link past the last node");
        Ok(())
    }
}
