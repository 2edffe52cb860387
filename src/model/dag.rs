//! The dependency graph, built once with petgraph; every order orch uses
//! (start, stop, waves, closures) is derived from it here.

use std::collections::VecDeque;

use petgraph::algo::kosaraju_scc;
use petgraph::graph::{DiGraph, NodeIndex};
use petgraph::visit::EdgeRef;
use petgraph::Direction;

/// Index of a service in [`super::Stack::services`] (file order).
pub type ServiceId = usize;

/// Services and their dependencies. An edge goes from a dependency to its
/// dependent, so dependencies come first in every order.
#[derive(Debug, Clone)]
pub struct Dag {
    graph: DiGraph<(), ()>,
    order: Vec<ServiceId>,
    wave_of: Vec<usize>,
    waves: Vec<Vec<ServiceId>>,
}

impl Dag {
    /// Build the graph from each service's direct dependencies. A cycle is
    /// returned as its path, `a -> b -> ... -> a` with `a -> b` meaning `a`
    /// depends on `b`, one per strongly connected group.
    pub fn new(depends_on: &[Vec<ServiceId>]) -> Result<Dag, Vec<Vec<ServiceId>>> {
        let mut graph =
            DiGraph::with_capacity(depends_on.len(), depends_on.iter().map(Vec::len).sum());
        for _ in depends_on {
            graph.add_node(());
        }
        for (dependent, deps) in depends_on.iter().enumerate() {
            for &dep in deps {
                graph.add_edge(NodeIndex::new(dep), NodeIndex::new(dependent), ());
            }
        }
        let cycles: Vec<Vec<ServiceId>> = kosaraju_scc(&graph)
            .into_iter()
            .filter(|scc| scc.len() > 1)
            .map(|scc| cycle_in(&graph, &scc))
            .collect();
        if !cycles.is_empty() {
            let mut cycles = cycles;
            cycles.sort();
            return Err(cycles);
        }
        // Wave of a service: one past the latest wave of its dependencies.
        // Kahn's algorithm in file order gives both the waves and an order.
        let n = depends_on.len();
        let mut missing: Vec<usize> = (0..n).map(|i| depends_on[i].len()).collect();
        let mut wave_of = vec![0; n];
        let mut queue: VecDeque<ServiceId> = (0..n).filter(|&i| missing[i] == 0).collect();
        while let Some(id) = queue.pop_front() {
            for dependent in graph.neighbors_directed(NodeIndex::new(id), Direction::Outgoing) {
                let d = dependent.index();
                wave_of[d] = wave_of[d].max(wave_of[id] + 1);
                missing[d] -= 1;
                if missing[d] == 0 {
                    queue.push_back(d);
                }
            }
        }
        let mut waves: Vec<Vec<ServiceId>> =
            vec![Vec::new(); wave_of.iter().max().map_or(0, |w| w + 1)];
        for (id, &w) in wave_of.iter().enumerate() {
            waves[w].push(id);
        }
        let order = waves.iter().flatten().copied().collect();
        Ok(Dag {
            graph,
            order,
            wave_of,
            waves,
        })
    }

    /// Every service, dependencies first; within a wave, in file order.
    pub fn order(&self) -> &[ServiceId] {
        &self.order
    }

    /// The start order reversed: dependents first.
    pub fn stop_order(&self) -> impl Iterator<Item = ServiceId> + '_ {
        self.order.iter().rev().copied()
    }

    /// Groups that may start in parallel: wave 0 has no dependencies, and a
    /// service stands in the wave right after the latest of its dependencies.
    pub fn waves(&self) -> &[Vec<ServiceId>] {
        &self.waves
    }

    pub fn wave_of(&self, id: ServiceId) -> usize {
        self.wave_of[id]
    }

    /// Direct dependencies of `id`, in the order they were declared.
    pub fn dependencies(&self, id: ServiceId) -> Vec<ServiceId> {
        self.neighbours(id, Direction::Incoming)
    }

    /// Services that depend on `id` directly, in file order.
    pub fn dependents(&self, id: ServiceId) -> Vec<ServiceId> {
        self.neighbours(id, Direction::Outgoing)
    }

    fn neighbours(&self, id: ServiceId, direction: Direction) -> Vec<ServiceId> {
        let mut ids: Vec<ServiceId> = self
            .graph
            .edges_directed(NodeIndex::new(id), direction)
            .map(|e| {
                if direction == Direction::Incoming {
                    e.source()
                } else {
                    e.target()
                }
                .index()
            })
            .collect();
        ids.sort_unstable();
        ids
    }

    /// `roots` and everything they depend on, transitively, in start order.
    pub fn closure(&self, roots: &[ServiceId]) -> Vec<ServiceId> {
        self.reach(roots, Direction::Incoming)
    }

    /// `roots` and everything that depends on them, transitively, in start order.
    pub fn dependents_closure(&self, roots: &[ServiceId]) -> Vec<ServiceId> {
        self.reach(roots, Direction::Outgoing)
    }

    fn reach(&self, roots: &[ServiceId], direction: Direction) -> Vec<ServiceId> {
        let mut seen = vec![false; self.graph.node_count()];
        let mut todo: Vec<ServiceId> = roots.to_vec();
        while let Some(id) = todo.pop() {
            if std::mem::replace(&mut seen[id], true) {
                continue;
            }
            todo.extend(
                self.graph
                    .neighbors_directed(NodeIndex::new(id), direction)
                    .map(NodeIndex::index),
            );
        }
        self.order.iter().copied().filter(|&id| seen[id]).collect()
    }
}

/// A shortest cycle through the first service (in file order) of a strongly
/// connected group, in "depends on" direction, ending where it started.
fn cycle_in(graph: &DiGraph<(), ()>, scc: &[NodeIndex]) -> Vec<ServiceId> {
    let start = *scc
        .iter()
        .min()
        .expect("a strongly connected group is never empty");
    let mut in_scc = vec![false; graph.node_count()];
    for n in scc {
        in_scc[n.index()] = true;
    }
    let inside = |n: &NodeIndex| in_scc[n.index()];
    let mut parent = vec![None; graph.node_count()];
    let mut queue = VecDeque::from([start]);
    while let Some(node) = queue.pop_front() {
        let mut deps: Vec<NodeIndex> = graph
            .neighbors_directed(node, Direction::Incoming)
            .filter(inside)
            .collect();
        deps.sort_unstable();
        for dep in deps {
            if dep == start {
                let mut path = vec![start.index()];
                let mut at = node;
                let mut back = vec![at.index()];
                while let Some(p) = parent[at.index()] {
                    at = p;
                    back.push(at.index());
                }
                back.pop();
                path.extend(back.into_iter().rev());
                path.push(start.index());
                return path;
            }
            if parent[dep.index()].is_none() {
                parent[dep.index()] = Some(node);
                queue.push_back(dep);
            }
        }
    }
    unreachable!(
        "a strongly connected group of two or more services has a cycle through each of them"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    // db(0) <- api(1) <- web(2); cache(3) <- web; worker(4) <- db
    fn shop() -> Dag {
        Dag::new(&[vec![], vec![0], vec![1, 3], vec![], vec![0]]).unwrap()
    }

    #[test]
    fn orders_dependencies_first_in_waves() {
        let dag = shop();
        assert_eq!(dag.waves(), &[vec![0, 3], vec![1, 4], vec![2]]);
        assert_eq!(dag.order(), &[0, 3, 1, 4, 2]);
        assert_eq!(dag.stop_order().collect::<Vec<_>>(), vec![2, 4, 1, 3, 0]);
    }

    #[test]
    fn wave_is_one_past_the_latest_dependency() {
        // c depends on a (wave 0) and b (wave 1): it goes to wave 2.
        let dag = Dag::new(&[vec![], vec![0], vec![0, 1]]).unwrap();
        assert_eq!(dag.wave_of(2), 2);
    }

    #[test]
    fn closures() {
        let dag = shop();
        assert_eq!(dag.closure(&[2]), vec![0, 3, 1, 2]);
        assert_eq!(dag.closure(&[4, 3]), vec![0, 3, 4]);
        assert_eq!(dag.dependents_closure(&[0]), vec![0, 1, 4, 2]);
        assert_eq!(dag.dependencies(2), vec![1, 3]);
        assert_eq!(dag.dependents(0), vec![1, 4]);
    }

    #[test]
    fn names_the_whole_cycle() {
        // a -> b -> c -> a, and d -> e -> d, and f alone.
        let cycles = Dag::new(&[vec![1], vec![2], vec![0], vec![4], vec![3], vec![]]).unwrap_err();
        assert_eq!(cycles, vec![vec![0, 1, 2, 0], vec![3, 4, 3]]);
    }

    #[test]
    fn picks_the_shortest_cycle() {
        // a -> b -> a and a -> c -> d -> a
        let cycles = Dag::new(&[vec![2, 1], vec![0], vec![3], vec![0]]).unwrap_err();
        assert_eq!(cycles, vec![vec![0, 1, 0]]);
    }

    #[test]
    fn a_cycle_through_100_000_services() {
        // s0 -> s99999 -> s99998 -> ... -> s1 -> s0: one group of 100,000.
        let n = 100_000;
        let deps: Vec<Vec<usize>> = (0..n).map(|i| vec![(i + n - 1) % n]).collect();
        let cycles = Dag::new(&deps).unwrap_err();
        assert_eq!(cycles.len(), 1);
        assert_eq!(cycles[0].len(), n + 1);
        assert_eq!(cycles[0][..3], [0, n - 1, n - 2]);
    }

    #[test]
    fn large_chains_are_fine() {
        let deps: Vec<Vec<usize>> = (0..10_000)
            .map(|i| if i == 0 { vec![] } else { vec![i - 1] })
            .collect();
        let dag = Dag::new(&deps).unwrap();
        assert_eq!(dag.waves().len(), 10_000);
    }
}
