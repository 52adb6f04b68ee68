"""Session 22: host-time pieces of the eager attention call, each timed alone (median of 7 x 300 calls)."""
import statistics, time, torch
from pykittens.kernels import attention
from pykittens.kernels.attention_ops import _check, _hopper_forward, _is_hopper, SplitScratch
q = torch.randn(1, 2, 128, 128, device="cuda", dtype=torch.bfloat16)
attention(q, q, q)
chk = _check(q, q, q, False)
f = chk.forward
lse = torch.empty(1, 2, 1, 128, dtype=torch.float32, device="cuda")
o = torch.empty_like(q)
ph = f.placeholders
def t(fn, n=300):
    fn(); torch.cuda.synchronize()
    r = []
    for _ in range(7):
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        r.append((time.perf_counter() - t0) / n * 1e6)
        torch.cuda.synchronize()
    return statistics.median(r)
pieces = {
 "attention(q,q,q)": lambda: attention(q, q, q),
 "_hopper_forward(checked)": lambda: _hopper_forward(q, q, q, False, 0.1, chk),
 "f.plain(...) launcher call": lambda: f.plain(q, q, q, o, lse, *ph, 0.1),
 "plan.launch": lambda: f.plain.plan.launch(f.plain.grid, [q.data_ptr()] * 8 + [0, 0.1], 0),
 "cuLaunchKernel (ctypes)": lambda: f.plain.plan.loaded.launch(f.plain.grid, f.plain.plan.pointer, 0),
 "_check": lambda: _check(q, q, q, False),
 "_is_hopper": lambda: _is_hopper(q.device),
 "q.device": lambda: q.device,
 "q.data_ptr()": lambda: q.data_ptr(),
 "empty_like(q, contiguous_format)": lambda: torch.empty_like(q, memory_format=torch.contiguous_format),
 "empty_like(q)": lambda: torch.empty_like(q),
 "empty(shape, dtype, device)": lambda: torch.empty(q.shape, dtype=q.dtype, device=q.device),
 "empty lse (B,H,1,rows)": lambda: torch.empty(1, 2, 1, 128, dtype=torch.float32, device=q.device),
 "lse.squeeze(2)": lambda: lse.squeeze(2),
 "is_current_stream_capturing": torch.cuda.is_current_stream_capturing,
 "torch.compiler.is_compiling": torch.compiler.is_compiling,
 "is_grad_enabled + 3 requires_grad": lambda: torch.is_grad_enabled() and (q.requires_grad or q.requires_grad or q.requires_grad),
 "SplitScratch.get(n=0)": lambda: SplitScratch.get(128, 3, 0, q.device),
}
for name, fn in pieces.items():
    print(f"{name:40s} {t(fn):6.2f} us", flush=True)
