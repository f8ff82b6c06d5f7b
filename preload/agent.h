/*
 * The agent's life cycle inside a CPython process: start-up once the interpreter is
 * initialised, the sampler and socket threads, fork and exit.
 *
 * libpyprof.so (loader.c) dlopens the agent with RTLD_LOCAL only in CPython processes and
 * calls pyprof_agent_start() from its constructor; that is the agent's only export.
 */
#ifndef PYPROF_AGENT_H
#define PYPROF_AGENT_H

#define PYPROF_EXPORT __attribute__((visibility("default")))

/* Called once, from the loader's constructor, before main(). Never fails visibly: on any
 * problem it logs one line and leaves the agent inert. */
PYPROF_EXPORT void pyprof_agent_start(void);

#endif
