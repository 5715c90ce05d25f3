// Cycles among the registry's modules: Tarjan's strongly connected components, iterative so a
// large graph cannot overflow the stack. Each component of more than one module is a cycle; a
// module importing itself is not.

export interface Edge {
  from: string
  to: string
  count: number
}

export function findCycles(nodes: string[], edges: Edge[]): string[][] {
  const next = new Map<string, string[]>(nodes.map((n) => [n, []]))
  for (const e of edges) if (e.from !== e.to) next.get(e.from)?.push(e.to)
  const index = new Map<string, number>()
  const low = new Map<string, number>()
  const onStack = new Set<string>()
  const stack: string[] = []
  const cycles: string[][] = []
  let counter = 0

  for (const start of nodes) {
    if (index.has(start)) continue
    // Each frame is a node and how many of its successors have been visited.
    const frames: Array<[string, number]> = [[start, 0]]
    index.set(start, counter)
    low.set(start, counter++)
    stack.push(start)
    onStack.add(start)
    while (frames.length > 0) {
      const frame = frames[frames.length - 1] as [string, number]
      const [node, i] = frame
      const succ = next.get(node) ?? []
      if (i < succ.length) {
        frame[1] = i + 1
        const w = succ[i] as string
        if (!index.has(w)) {
          index.set(w, counter)
          low.set(w, counter++)
          stack.push(w)
          onStack.add(w)
          frames.push([w, 0])
        } else if (onStack.has(w)) {
          low.set(node, Math.min(low.get(node) as number, index.get(w) as number))
        }
        continue
      }
      frames.pop()
      const parent = frames[frames.length - 1]
      if (parent) low.set(parent[0], Math.min(low.get(parent[0]) as number, low.get(node) as number))
      if (low.get(node) !== index.get(node)) continue
      const component: string[] = []
      for (let w = stack.pop(); w !== undefined; w = stack.pop()) {
        onStack.delete(w)
        component.push(w)
        if (w === node) break
      }
      if (component.length > 1) cycles.push(component.sort())
    }
  }
  return cycles.sort((a, b) => (a.join() < b.join() ? -1 : 1))
}
