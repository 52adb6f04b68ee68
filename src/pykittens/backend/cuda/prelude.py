"""The C++ every generated kernel starts with: storage types, packing, fragment coordinates, tile structs.

Self-contained on purpose (no CUDA headers): NVRTC compiles it without a toolkit, and it stays short. Op-specific
device code lives next to each op (``Op.prelude``) and is appended only when the kernel uses the op.
"""

BASE = r"""
// ---- pykittens prelude: types and helpers shared by every op ----
namespace tk {
struct bf16 { unsigned short x; };
struct half { unsigned short x; };
struct row_l {}; struct col_l {}; struct ortho_l {}; struct align_l {};
template<class A, class B> struct same { static constexpr bool value = false; };
template<class A> struct same<A, A> { static constexpr bool value = true; };

// Two elements of a register tile travel together: float2 for fp32, one 32-bit word for bf16/fp16.
template<typename T> struct packed { using type = unsigned; };
template<> struct packed<float> { using type = float2; };
template<typename T> using packed_t = typename packed<T>::type;

__device__ __forceinline__ float to_float(float x) { return x; }
__device__ __forceinline__ float to_float(bf16 x) { return __uint_as_float(((unsigned)x.x) << 16); }
__device__ __forceinline__ float to_float(half x) { float f; asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(x.x)); return f; }
template<typename T> __device__ __forceinline__ T from_float(float x);
template<> __device__ __forceinline__ float from_float<float>(float x) { return x; }
template<> __device__ __forceinline__ bf16 from_float<bf16>(float x) { bf16 r; asm("cvt.rn.bf16.f32 %0, %1;" : "=h"(r.x) : "f"(x)); return r; }
template<> __device__ __forceinline__ half from_float<half>(float x) { half r; asm("cvt.rn.f16.f32 %0, %1;" : "=h"(r.x) : "f"(x)); return r; }
template<typename T> __device__ __forceinline__ float round_to(float x) { return to_float(from_float<T>(x)); }

template<typename T> __device__ __forceinline__ float2 unpack(packed_t<T> v);
template<> __device__ __forceinline__ float2 unpack<float>(float2 v) { return v; }
template<> __device__ __forceinline__ float2 unpack<bf16>(unsigned v) { return make_float2(__uint_as_float(v << 16), __uint_as_float(v & 0xffff0000u)); }
template<> __device__ __forceinline__ float2 unpack<half>(unsigned v) {
  float a, b; asm("{.reg .f16 l, h; mov.b32 {l, h}, %2; cvt.f32.f16 %0, l; cvt.f32.f16 %1, h;}" : "=f"(a), "=f"(b) : "r"(v)); return make_float2(a, b); }
template<typename T> __device__ __forceinline__ packed_t<T> pack(float2 v);
template<> __device__ __forceinline__ float2 pack<float>(float2 v) { return v; }
template<> __device__ __forceinline__ unsigned pack<bf16>(float2 v) { unsigned r; asm("cvt.rn.bf16x2.f32 %0, %1, %2;" : "=r"(r) : "f"(v.y), "f"(v.x)); return r; }
template<> __device__ __forceinline__ unsigned pack<half>(float2 v) { unsigned r; asm("cvt.rn.f16x2.f32 %0, %1, %2;" : "=r"(r) : "f"(v.y), "f"(v.x)); return r; }

__device__ __forceinline__ int lane_id() { return threadIdx.x & 31; }

// Register tile: 16x16 subtiles; each lane holds 4 pairs per subtile (see pykittens.types.fragment_coords).
template<typename T, int R, int C, typename L>
struct rt {
  using dtype = T; using layout = L;
  static constexpr int rows = R, cols = C, height = R / 16, width = C / 16;
  packed_t<T> data[R / 16][C / 16][4];
};
// Subtiles [I0, I0+H) x [J0, J0+W) of register tile B under a name of their own (tk.subtile): `data[i]` is row
// I0+i of B's subtiles from column J0 on, so data[i][j][k] reaches B's registers (everything unrolls).
template<class B, int I0, int J0, int H, int W>
struct rt_view {
  using dtype = typename B::dtype; using layout = typename B::layout;
  static constexpr int rows = H * 16, cols = W * 16, height = H, width = W;
  struct rows_t {
    B& b;
    __device__ __forceinline__ auto operator[](int i) const { return b.data[I0 + i] + J0; }
  } data;
};
// (row, col) inside a 16x16 subtile of pair k, element e, for the calling lane.
template<typename L> __device__ __forceinline__ int frag_row(int k, int e) {
  int g = lane_id() >> 2, t = lane_id() & 3;
  if constexpr (same<L, row_l>::value) return g + 8 * (k & 1); else return 2 * t + 8 * (k >> 1) + e;
}
template<typename L> __device__ __forceinline__ int frag_col(int k, int e) {
  int g = lane_id() >> 2, t = lane_id() & 3;
  if constexpr (same<L, row_l>::value) return 2 * t + 8 * (k >> 1) + e; else return g + 8 * (k & 1);
}

// Register vector: per 16-chunk, 2 values (ortho: g, g+8) or 4 (align: 2t, 2t+1, 2t+8, 2t+9). Held as fp32,
// rounded to T whenever written, so bf16 vectors behave like bf16.
template<typename T, int N, typename L>
struct rv {
  using dtype = T; using layout = L;
  static constexpr int length = N, chunks = N / 16, per = same<L, ortho_l>::value ? 2 : 4;
  float data[N / 16][per];
};
template<typename L> __device__ __forceinline__ int vec_idx(int i) {
  int g = lane_id() >> 2, t = lane_id() & 3;
  if constexpr (same<L, ortho_l>::value) return g + 8 * i; else return 2 * t + (i & 1) + 8 * (i >> 1);
}

// Shared tile: swizzle atoms S bytes wide (see pykittens.types.swizzled_offset).
template<typename T, int R, int C, int S>
struct st {
  using dtype = T;
  static constexpr int rows = R, cols = C, swizzle = S, bytes = R * C * (int)sizeof(T);
  T* p;
  __device__ static __forceinline__ int offset(int r, int c) {
    int cb = c * (int)sizeof(T);
    if constexpr (S == 0) { return r * C * (int)sizeof(T) + cb; }
    else { int lin = r * S + cb % S; lin ^= ((lin >> 7) & (S / 16 - 1)) << 4; return (cb / S) * R * S + lin; }
  }
  __device__ __forceinline__ T* ptr(int r, int c) const { return (T*)((char*)p + offset(r, c)); }
  __device__ __forceinline__ unsigned saddr(int r, int c) const { return (unsigned)__cvta_generic_to_shared(p) + offset(r, c); }
};
template<typename T, int N>
struct sv { using dtype = T; static constexpr int length = N, bytes = N * (int)sizeof(T); T* p; };
template<typename Tile>
struct sarray {
  unsigned char* base;
  __device__ __forceinline__ Tile operator[](int i) const { return Tile{(typename Tile::dtype*)(base + i * Tile::bytes)}; }
};

// Semaphore: an mbarrier (8 bytes) in shared memory.
struct semaphore {
  using dtype = unsigned long long; static constexpr int bytes = 8;
  unsigned long long* p;
  __device__ __forceinline__ unsigned saddr() const { return (unsigned)__cvta_generic_to_shared(p); }
};
// TMA descriptor (CUtensorMap), passed by value as a __grid_constant__ kernel parameter.
struct alignas(64) tensor_map { unsigned long long v[16]; };

// Global layout: 4-D (batch, depth, rows, cols), unit stride along cols.
template<typename T>
struct gl {
  T* ptr; int b, d, r, c; long long sb, sd, sr;
  __device__ __forceinline__ T* at(int i, int j, int k, int l) const { return ptr + i * sb + j * sd + k * sr + l; }
};

// Element-wise maps over register tiles and vectors (computed in fp32, stored in the destination's dtype).
template<class D, class S, class F> __device__ __forceinline__ void map(D& d, const S& s, F f) {
  #pragma unroll
  for (int i = 0; i < D::height; i++)
  #pragma unroll
  for (int j = 0; j < D::width; j++)
  #pragma unroll
  for (int k = 0; k < 4; k++) { float2 v = unpack<typename S::dtype>(s.data[i][j][k]);
    d.data[i][j][k] = pack<typename D::dtype>(make_float2(f(v.x), f(v.y))); }
}
// Like map, but f also gets the element's (row, col) inside the tile: for masks.
template<class D, class S, class F> __device__ __forceinline__ void map_rc(D& d, const S& s, F f) {
  using L = typename D::layout;
  #pragma unroll
  for (int i = 0; i < D::height; i++)
  #pragma unroll
  for (int j = 0; j < D::width; j++)
  #pragma unroll
  for (int k = 0; k < 4; k++) { float2 v = unpack<typename S::dtype>(s.data[i][j][k]);
    d.data[i][j][k] = pack<typename D::dtype>(make_float2(f(v.x, i * 16 + frag_row<L>(k, 0), j * 16 + frag_col<L>(k, 0)),
                                                          f(v.y, i * 16 + frag_row<L>(k, 1), j * 16 + frag_col<L>(k, 1)))); }
}
template<class D, class A, class B, class F> __device__ __forceinline__ void map2(D& d, const A& a, const B& b, F f) {
  #pragma unroll
  for (int i = 0; i < D::height; i++)
  #pragma unroll
  for (int j = 0; j < D::width; j++)
  #pragma unroll
  for (int k = 0; k < 4; k++) { float2 x = unpack<typename A::dtype>(a.data[i][j][k]), y = unpack<typename B::dtype>(b.data[i][j][k]);
    d.data[i][j][k] = pack<typename D::dtype>(make_float2(f(x.x, y.x), f(x.y, y.y))); }
}
template<class D, class S, class F> __device__ __forceinline__ void vmap(D& d, const S& s, F f) {
  #pragma unroll
  for (int i = 0; i < D::chunks; i++)
  #pragma unroll
  for (int k = 0; k < D::per; k++) d.data[i][k] = round_to<typename D::dtype>(f(s.data[i][k]));
}
template<class D, class A, class B, class F> __device__ __forceinline__ void vmap2(D& d, const A& a, const B& b, F f) {
  #pragma unroll
  for (int i = 0; i < D::chunks; i++)
  #pragma unroll
  for (int k = 0; k < D::per; k++) d.data[i][k] = round_to<typename D::dtype>(f(a.data[i][k], b.data[i][k]));
}
}  // namespace tk
"""
