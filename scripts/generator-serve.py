"""Serves a GGUF model on an OpenAI-compatible /v1/chat/completions endpoint (llama.cpp through the
xllamacpp wheel) until SIGTERM or SIGINT. Usage: generator-serve.py MODEL HOST PORT [THREADS].
Two threads and OMP_WAIT_POLICY=PASSIVE (set by the caller) keep it usable on a 2-core machine."""
import signal
import sys

import xllamacpp

model, host, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
threads = int(sys.argv[4]) if len(sys.argv) > 4 else 2
params = xllamacpp.CommonParams()
params.model.path = model
params.hostnames = [host]
params.port = port
params.n_ctx = 4096
params.n_parallel = 1
params.cpuparams.n_threads = threads
params.cpuparams_batch.n_threads = threads
params.warmup = False
server = xllamacpp.Server(params)
print("generator-serve: listening on", server.listening_address, flush=True)
signal.sigwait([signal.SIGTERM, signal.SIGINT])
