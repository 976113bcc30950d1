#!/usr/bin/env python3
"""Fails when the files of one crate import each other in a cycle (issue 12: no cycle between files of one crate).

A file imports another when it names `crate::path` or `super::name` outside comments and test modules.
Usage: scripts/check-module-cycles.py (from the repository root); exit 1 and the cycles when there are any."""
import os,re,sys,glob
def modname(crate_src, path):
    rel=os.path.relpath(path, crate_src)[:-3]
    parts=rel.split('/')
    if parts[-1]=='mod': parts=parts[:-1]
    if parts==['lib'] or parts==['main']: return 'crate'
    return 'crate::'+'::'.join(parts)
found = []
for src in glob.glob('crates/*/src'):
    files=[f for f in glob.glob(src+'/**/*.rs',recursive=True) if '/bin/' not in f]
    mods={modname(src,f):f for f in files}
    g={m:set() for m in mods}
    for m,f in mods.items():
        t=open(f).read()
        # strip test modules
        t=re.split(r'#\[cfg\(test\)\]',t)[0]
        t=re.sub(r'//[^\n]*','',t)
        refs=set(re.findall(r'crate::([a-z_][a-z0-9_]*(?:::[a-z_][a-z0-9_]*)*)',t))
        for sref in re.findall(r'\bsuper::([a-z_][a-z0-9_]*)',t):
            parent=m.rsplit('::',1)[0] if m!='crate' else 'crate'
            # super:: relative to file module
            base=parent
            cand=base+'::'+sref
            refs.add(cand[len('crate::'):] if cand.startswith('crate::') else sref)
        for r in refs:
            parts=r.split('::')
            # longest prefix that is a module
            for i in range(len(parts),0,-1):
                c='crate::'+'::'.join(parts[:i])
                if c in mods:
                    if c!=m and not m.startswith(c+'::') : g[m].add(c)
                    break
    # find cycles
    sys.setrecursionlimit(10000)
    color={}; stack=[]; cycles=[]
    def dfs(u):
        color[u]=1; stack.append(u)
        for v in g[u]:
            if color.get(v)==1: cycles.append(stack[stack.index(v):]+[v])
            elif not color.get(v): dfs(v)
        stack.pop(); color[u]=2
    for u in g:
        if not color.get(u): dfs(u)
    for c in cycles:
        print(f"{src}: {' -> '.join(c)}")
        found.append(c)
if found:
    print(f"check-module-cycles: {len(found)} cycle(s) between files of one crate", file=sys.stderr)
    sys.exit(1)
print("check-module-cycles: no cycle between the files of any crate")
