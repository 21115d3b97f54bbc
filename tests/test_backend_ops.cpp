// The op test program (after ggml's test-backend-ops): every op of every available backend,
// on several shapes (odd ones included), against straightforward double-precision references
// written here from the spec, with NaN checks. Prints one line per case; exit status 1 if any
// case fails. A backend that does not support an op/dtype reports it as skipped.
#include <cmath>
#include <cstdio>
#include <functional>
#include <numbers>
#include <random>
#include <string>
#include <vector>

#include "src/backend/backend.hpp"
#include "src/core/float16.hpp"

using namespace fresco;

namespace {

using Vec = std::vector<double>;

std::mt19937 rng(42);

Tensor random_tensor(const Shape& shape, double scale = 1.0) {
  std::normal_distribution<float> n(0.0f, float(scale));
  Tensor t(shape);
  for (int64_t i = 0; i < t.numel(); ++i) t.f32()[i] = n(rng);
  return t;
}

Vec as_vec(const Tensor& t) {
  const auto v = t.to_vector();
  return Vec(v.begin(), v.end());
}

struct Outcome {
  Vec got, expected;
};

// A case runs the op on `backend` and computes the reference; both results as doubles.
struct Case {
  Op op;
  std::string params;
  std::function<Outcome(Backend&)> run;
};

// Normalised mean squared error, as ggml's op tests measure it.
double nmse(const Vec& a, const Vec& b) {
  double err = 0, ref = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    err += (a[i] - b[i]) * (a[i] - b[i]);
    ref += b[i] * b[i];
  }
  return ref > 0 ? err / ref : err;
}

// softmax(q k^T / sqrt(D)) v per head in double, with the log-sum-exp of each query row.
// q: [Lq, H, D]; k, v: [Lk, H, D]; o: [Lq, H, D]; lse: [Lq, H]
void reference_attention(const Tensor& q, const Tensor& k, const Tensor& v, Vec& o, Vec& lse) {
  const int64_t Lq = q.dim(0), H = q.dim(1), D = q.dim(2), Lk = k.dim(0);
  o.assign(static_cast<size_t>(Lq * H * D), 0.0);
  lse.assign(static_cast<size_t>(Lq * H), 0.0);
  for (int64_t h = 0; h < H; ++h)
    for (int64_t i = 0; i < Lq; ++i) {
      Vec s(static_cast<size_t>(Lk));
      double mx = -1e300;
      for (int64_t j = 0; j < Lk; ++j) {
        double dot = 0;
        for (int64_t d = 0; d < D; ++d)
          dot += double(q.f32()[(i * H + h) * D + d]) * k.f32()[(j * H + h) * D + d];
        s[size_t(j)] = dot / std::sqrt(double(D));
        mx = std::max(mx, s[size_t(j)]);
      }
      double sum = 0;
      for (double& e : s) sum += (e = std::exp(e - mx));
      lse[size_t(i * H + h)] = mx + std::log(sum);
      for (int64_t d = 0; d < D; ++d) {
        double acc = 0;
        for (int64_t j = 0; j < Lk; ++j) acc += s[size_t(j)] / sum * v.f32()[(j * H + h) * D + d];
        o[size_t((i * H + h) * D + d)] = acc;
      }
    }
}

// Helpers that move data through a backend.
Tensor up(Backend& b, const Tensor& t) { return b.upload(t); }
Tensor out(Backend& b, const Shape& s) { return b.alloc(s, DType::f32); }
Vec down(Backend& b, const Tensor& t) { return as_vec(b.download(t)); }

std::vector<Case> make_cases() {
  std::vector<Case> cases;
  auto add = [&](Op op, std::string params, std::function<Outcome(Backend&)> run) {
    cases.push_back({op, std::move(params), std::move(run)});
  };

  for (auto [M, N, K] : {std::tuple{1, 1, 1}, {7, 13, 5}, {33, 64, 17}, {128, 96, 256}, {0, 8, 4}}) {
    for (bool with_bias : {true, false}) {
      add(Op::linear, "M=" + std::to_string(M) + " N=" + std::to_string(N) + " K=" +
                          std::to_string(K) + (with_bias ? " bias" : ""),
          [=](Backend& b) {
            const Tensor x = random_tensor({M, K}), w = random_tensor({N, K}), bias = random_tensor({N});
            const Tensor y = out(b, {M, N}), bd = up(b, bias);
            b.linear(up(b, x), up(b, w), with_bias ? &bd : nullptr, y);
            Vec ref(static_cast<size_t>(M * N));
            for (int m = 0; m < M; ++m)
              for (int n = 0; n < N; ++n) {
                double s = with_bias ? bias.f32()[n] : 0.0;
                for (int k = 0; k < K; ++k) s += double(x.f32()[m * K + k]) * w.f32()[n * K + k];
                ref[size_t(m * N + n)] = s;
              }
            return Outcome{down(b, y), ref};
          });
    }
  }

  for (auto [L, C] : {std::pair{1, 8}, {5, 3}, {19, 64}, {64, 1000}}) {
    const std::string p = "L=" + std::to_string(L) + " C=" + std::to_string(C);
    add(Op::layer_norm, p, [=](Backend& b) {
      const Tensor x = random_tensor({L, C}, 3.0);
      const Tensor y = out(b, {L, C});
      b.layer_norm(up(b, x), 1e-6f, y);
      Vec ref(static_cast<size_t>(L * C));
      for (int l = 0; l < L; ++l) {
        double mean = 0, var = 0;
        for (int c = 0; c < C; ++c) mean += x.f32()[l * C + c] / double(C);
        for (int c = 0; c < C; ++c) var += std::pow(x.f32()[l * C + c] - mean, 2) / double(C);
        for (int c = 0; c < C; ++c) ref[size_t(l * C + c)] = (x.f32()[l * C + c] - mean) / std::sqrt(var + 1e-6);
      }
      return Outcome{down(b, y), ref};
    });
    add(Op::modulate, p, [=](Backend& b) {
      const Tensor x = random_tensor({L, C}), sh = random_tensor({C}), sc = random_tensor({C});
      const Tensor y = out(b, {L, C});
      b.modulate(up(b, x), up(b, sh), up(b, sc), y);
      Vec ref(static_cast<size_t>(L * C));
      for (int l = 0; l < L; ++l)
        for (int c = 0; c < C; ++c)
          ref[size_t(l * C + c)] = (1.0 + sc.f32()[c]) * x.f32()[l * C + c] + sh.f32()[c];
      return Outcome{down(b, y), ref};
    });
    add(Op::gated_residual, p, [=](Backend& b) {
      const Tensor x = random_tensor({L, C}), g = random_tensor({C}), yv = random_tensor({L, C});
      const Tensor acc = up(b, x.clone());
      b.gated_residual(acc, up(b, g), up(b, yv));
      Vec ref(static_cast<size_t>(L * C));
      for (int l = 0; l < L; ++l)
        for (int c = 0; c < C; ++c)
          ref[size_t(l * C + c)] = x.f32()[l * C + c] + double(g.f32()[c]) * yv.f32()[l * C + c];
      return Outcome{down(b, acc), ref};
    });
  }

  for (int n : {1, 7, 1000, 4097}) {
    const std::string p = "n=" + std::to_string(n);
    add(Op::gelu_tanh, p, [=](Backend& b) {
      const Tensor x = random_tensor({n}, 3.0);
      const Tensor y = out(b, {n});
      b.gelu_tanh(up(b, x), y);
      Vec ref(static_cast<size_t>(n));
      const double k = std::sqrt(2.0 / std::numbers::pi);
      for (int i = 0; i < n; ++i) {
        const double v = x.f32()[i];
        ref[size_t(i)] = 0.5 * v * (1 + std::tanh(k * (v + 0.044715 * v * v * v)));
      }
      return Outcome{down(b, y), ref};
    });
    add(Op::silu, p, [=](Backend& b) {
      const Tensor x = random_tensor({n}, 3.0);
      const Tensor y = out(b, {n});
      b.silu(up(b, x), y);
      Vec ref(static_cast<size_t>(n));
      for (int i = 0; i < n; ++i) ref[size_t(i)] = x.f32()[i] / (1 + std::exp(-double(x.f32()[i])));
      return Outcome{down(b, y), ref};
    });
    add(Op::add, p, [=](Backend& b) {
      const Tensor x = random_tensor({n}), z = random_tensor({n});
      const Tensor y = out(b, {n});
      b.add(up(b, x), up(b, z), y);
      Vec ref(static_cast<size_t>(n));
      for (int i = 0; i < n; ++i) ref[size_t(i)] = double(x.f32()[i]) + z.f32()[i];
      return Outcome{down(b, y), ref};
    });
    add(Op::axpy, p, [=](Backend& b) {
      const Tensor x = random_tensor({n}), z = random_tensor({n});
      const Tensor y = up(b, z.clone());
      b.axpy(-0.37f, up(b, x), y);
      Vec ref(static_cast<size_t>(n));
      for (int i = 0; i < n; ++i) ref[size_t(i)] = z.f32()[i] + double(-0.37f) * x.f32()[i];
      return Outcome{down(b, y), ref};
    });
  }

  for (auto [L, H, D] : {std::tuple{1, 1, 2}, {5, 3, 8}, {17, 2, 32}, {9, 24, 128}}) {
    const std::string p = "L=" + std::to_string(L) + " H=" + std::to_string(H) + " D=" + std::to_string(D);
    add(Op::rms_norm_heads, p, [=](Backend& b) {
      const Tensor x = random_tensor({L, H, D}, 2.0), s = random_tensor({D});
      const Tensor y = out(b, {L, H, D});
      b.rms_norm_heads(up(b, x), up(b, s), 1e-6f, y);
      Vec ref(static_cast<size_t>(L * H * D));
      for (int r = 0; r < L * H; ++r) {
        double ms = 0;
        for (int d = 0; d < D; ++d) ms += std::pow(x.f32()[r * D + d], 2) / D;
        for (int d = 0; d < D; ++d)
          ref[size_t(r * D + d)] = x.f32()[r * D + d] / std::sqrt(ms + 1e-6) * s.f32()[d];
      }
      return Outcome{down(b, y), ref};
    });
    add(Op::rope, p, [=](Backend& b) {
      const int P = D / 2;
      const Tensor x = random_tensor({L, H, D}), ang = random_tensor({L, P}, 3.0);
      Tensor c({L, P}), s({L, P});
      for (int i = 0; i < L * P; ++i) {
        c.f32()[i] = std::cos(ang.f32()[i]);
        s.f32()[i] = std::sin(ang.f32()[i]);
      }
      const Tensor y = out(b, {L, H, D});
      b.rope(up(b, x), up(b, c), up(b, s), y);
      Vec ref(static_cast<size_t>(L * H * D));
      for (int l = 0; l < L; ++l)
        for (int h = 0; h < H; ++h)
          for (int k = 0; k < P; ++k) {
            const int i = (l * H + h) * D + 2 * k;
            const double a = ang.f32()[l * P + k], x0 = x.f32()[i], x1 = x.f32()[i + 1];
            ref[size_t(i)] = std::cos(a) * x0 - std::sin(a) * x1;
            ref[size_t(i + 1)] = std::sin(a) * x0 + std::cos(a) * x1;
          }
      return Outcome{down(b, y), ref};
    });
  }

  // Attention: checks the output and the log-sum-exp rows (appended after the output).
  for (auto [Lq, Lk, H, D] : {std::tuple{1, 1, 1, 4}, {5, 9, 2, 8}, {37, 300, 3, 32}, {300, 41, 2, 64}}) {
    add(Op::attention,
        "Lq=" + std::to_string(Lq) + " Lk=" + std::to_string(Lk) + " H=" + std::to_string(H) +
            " D=" + std::to_string(D),
        [=](Backend& b) {
          const Tensor q = random_tensor({Lq, H, D}), k = random_tensor({Lk, H, D}),
                       v = random_tensor({Lk, H, D});
          const Tensor o = out(b, {Lq, H, D}), lse = out(b, {Lq, H});
          b.attention(up(b, q), up(b, k), up(b, v), o, lse);
          Vec ref_o, ref_lse;
          reference_attention(q, k, v, ref_o, ref_lse);
          Vec got = down(b, o), got_lse = down(b, lse);
          got.insert(got.end(), got_lse.begin(), got_lse.end());
          ref_o.insert(ref_o.end(), ref_lse.begin(), ref_lse.end());
          return Outcome{got, ref_o};
        });
  }

  // Merging the attention over two key blocks must equal the attention over all keys.
  for (auto [Lq, Lk1, Lk2, H, D] : {std::tuple{1, 1, 1, 1, 4}, {7, 5, 12, 3, 16}, {64, 100, 1, 2, 32}}) {
    add(Op::attention_merge,
        "Lq=" + std::to_string(Lq) + " Lk=" + std::to_string(Lk1) + "+" + std::to_string(Lk2) +
            " H=" + std::to_string(H) + " D=" + std::to_string(D),
        [=](Backend& b) {
          const Tensor q = random_tensor({Lq, H, D}), k = random_tensor({Lk1 + Lk2, H, D}),
                       v = random_tensor({Lk1 + Lk2, H, D});
          const Tensor o = out(b, {Lq, H, D}), lse = out(b, {Lq, H});
          const Tensor o2 = out(b, {Lq, H, D}), lse2 = out(b, {Lq, H});
          const Tensor q_d = up(b, q), k_d = up(b, k), v_d = up(b, v);
          b.attention(q_d, k_d.rows(0, Lk1), v_d.rows(0, Lk1), o, lse);
          b.attention(q_d, k_d.rows(Lk1, Lk2), v_d.rows(Lk1, Lk2), o2, lse2);
          b.attention_merge(o, lse, o2, lse2);
          Vec ref, ref_lse;  // the attention over all keys at once
          reference_attention(q, k, v, ref, ref_lse);
          Vec got = down(b, o), got_lse = down(b, lse);
          got.insert(got.end(), got_lse.begin(), got_lse.end());
          ref.insert(ref.end(), ref_lse.begin(), ref_lse.end());
          return Outcome{got, ref};
        });
  }

  for (float t : {0.0f, 0.25f, 1.0f}) {
    add(Op::timestep_embedding, "t=" + std::to_string(t), [=](Backend& b) {
      const Tensor e = out(b, {256});
      b.timestep_embedding(t, e);
      Vec ref(256);
      for (int k = 0; k < 128; ++k) {
        const double f = std::exp(-std::log(10000.0) * k / 128.0);
        ref[size_t(k)] = std::cos(1000.0 * t * f);
        ref[size_t(128 + k)] = std::sin(1000.0 * t * f);
      }
      return Outcome{down(b, e), ref};
    });
  }

  for (auto [A, B, C] : {std::tuple{1, 1, 3}, {7, 24, 64}, {0, 5, 9}}) {
    const std::string p = "rows " + std::to_string(A) + "+" + std::to_string(B) + " C=" + std::to_string(C);
    add(Op::concat_rows, p, [=](Backend& b) {
      const Tensor x = random_tensor({A, C}), z = random_tensor({B, C});
      const Tensor y = out(b, {A + B, C});
      const Tensor parts[2] = {up(b, x), up(b, z)};
      b.concat_rows(parts, y);
      Vec ref = as_vec(x), rz = as_vec(z);
      ref.insert(ref.end(), rz.begin(), rz.end());
      return Outcome{down(b, y), ref};
    });
    add(Op::split_rows, p, [=](Backend& b) {
      const Tensor x = random_tensor({A + B, C});
      const Tensor parts[2] = {out(b, {A, C}), out(b, {B, C})};
      b.split_rows(up(b, x), parts);
      Vec got = down(b, parts[0]), g1 = down(b, parts[1]);
      got.insert(got.end(), g1.begin(), g1.end());
      return Outcome{got, as_vec(x)};
    });
  }

  for (auto [L, C, c0, n] : {std::tuple{1, 4, 0, 4}, {9, 30, 7, 11}, {16, 448, 192, 256}}) {
    const std::string p = "L=" + std::to_string(L) + " C=" + std::to_string(C) + " cols " +
                          std::to_string(c0) + "+" + std::to_string(n);
    add(Op::copy_columns, p, [=](Backend& b) {
      const Tensor x = random_tensor({L, C});
      const Tensor y = out(b, {L, n});
      b.copy_columns(up(b, x), c0, y);
      Vec ref;
      for (int l = 0; l < L; ++l)
        for (int c = c0; c < c0 + n; ++c) ref.push_back(x.f32()[l * C + c]);
      return Outcome{down(b, y), ref};
    });
    add(Op::paste_columns, p, [=](Backend& b) {
      const Tensor x = random_tensor({L, n}), base = random_tensor({L, C});
      const Tensor y = up(b, base.clone());
      b.paste_columns(up(b, x), y, c0);
      Vec ref = as_vec(base);
      for (int l = 0; l < L; ++l)
        for (int c = 0; c < n; ++c) ref[size_t(l * C + c0 + c)] = x.f32()[l * n + c];
      return Outcome{down(b, y), ref};
    });
  }

  for (auto [c, h, w] : {std::tuple{1, 2, 2}, {16, 4, 6}, {3, 10, 2}}) {
    const std::string p = "c=" + std::to_string(c) + " h=" + std::to_string(h) + " w=" + std::to_string(w);
    // Reference: the spec's mapping (c, 2i+pi, 2j+pj) -> token i*w/2+j, channel 4c+2pi+pj.
    auto packed_index = [=](int ch, int y, int x) {
      return ((y / 2) * (w / 2) + x / 2) * 4 * c + ch * 4 + (y % 2) * 2 + (x % 2);
    };
    add(Op::pack_latent, p, [=](Backend& b) {
      const Tensor lat = random_tensor({c, h, w});
      const Tensor tok = out(b, {(h / 2) * (w / 2), 4 * c});
      b.pack_latent(up(b, lat), tok);
      Vec ref(static_cast<size_t>(c * h * w));
      for (int ch = 0; ch < c; ++ch)
        for (int y = 0; y < h; ++y)
          for (int x = 0; x < w; ++x) ref[size_t(packed_index(ch, y, x))] = lat.f32()[(ch * h + y) * w + x];
      return Outcome{down(b, tok), ref};
    });
    add(Op::unpack_latent, p, [=](Backend& b) {
      const Tensor tok = random_tensor({(h / 2) * (w / 2), 4 * c});
      const Tensor lat = out(b, {c, h, w});
      b.unpack_latent(up(b, tok), lat);
      Vec ref(static_cast<size_t>(c * h * w));
      for (int ch = 0; ch < c; ++ch)
        for (int y = 0; y < h; ++y)
          for (int x = 0; x < w; ++x) ref[size_t((ch * h + y) * w + x)] = tok.f32()[packed_index(ch, y, x)];
      return Outcome{down(b, lat), ref};
    });
  }
  // Convolution: whole images (zero rows) and haloed shards (pad_rows 0), 3x3 and 1x1.
  for (auto [Ci, Co, H, W, k, pad] : {std::tuple{1, 1, 1, 1, 3, 1}, {3, 5, 4, 7, 3, 1}, {4, 6, 6, 5, 3, 0},
                                      {8, 3, 5, 3, 1, 0}, {32, 16, 9, 11, 3, 1}}) {
    add(Op::conv2d,
        "Ci=" + std::to_string(Ci) + " Co=" + std::to_string(Co) + " " + std::to_string(H) + "x" +
            std::to_string(W) + " k=" + std::to_string(k) + " pad_rows=" + std::to_string(pad),
        [=](Backend& b) {
          const Tensor x = random_tensor({Ci, H, W}), w = random_tensor({Co, Ci, k, k}), bias = random_tensor({Co});
          const int Ho = H + 2 * pad - (k - 1);
          const Tensor y = out(b, {Co, Ho, W});
          b.conv2d(up(b, x), up(b, w), up(b, bias), pad, y);
          Vec ref(static_cast<size_t>(Co * Ho * W));
          for (int o = 0; o < Co; ++o)
            for (int i = 0; i < Ho; ++i)
              for (int j = 0; j < W; ++j) {
                double acc = bias.f32()[o];
                for (int c = 0; c < Ci; ++c)
                  for (int a = 0; a < k; ++a)
                    for (int e = 0; e < k; ++e) {
                      const int si = i + a - pad, sj = j + e - k / 2;
                      if (si < 0 || si >= H || sj < 0 || sj >= W) continue;
                      acc += double(w.f32()[((o * Ci + c) * k + a) * k + e]) * x.f32()[(c * H + si) * W + sj];
                    }
                ref[size_t((o * Ho + i) * W + j)] = acc;
              }
          return Outcome{down(b, y), ref};
        });
  }

  // GroupNorm: group_sums, then the normalisation with those statistics.
  for (auto [C, G, H, W] : {std::tuple{2, 1, 1, 1}, {32, 32, 3, 4}, {64, 32, 7, 5}}) {
    add(Op::group_norm,
        "C=" + std::to_string(C) + " groups=" + std::to_string(G) + " " + std::to_string(H) + "x" + std::to_string(W),
        [=](Backend& b) {
          const Tensor x = random_tensor({C, H, W}, 2.0), w = random_tensor({C}), bias = random_tensor({C});
          auto sums = b.group_sums(up(b, x), G);
          const Tensor y = out(b, {C, H, W});
          b.group_norm(up(b, x), sums, double(C / G * H * W), 1e-6f, up(b, w), up(b, bias), y);
          Vec ref(static_cast<size_t>(C * H * W));
          const int cpg = C / G, n = cpg * H * W;
          for (int g = 0; g < G; ++g) {
            double mean = 0, var = 0;
            for (int i = 0; i < n; ++i) mean += x.f32()[g * n + i] / n;
            for (int i = 0; i < n; ++i) var += std::pow(x.f32()[g * n + i] - mean, 2) / n;
            for (int i = 0; i < n; ++i) {
              const int c = g * cpg + i / (H * W);
              ref[size_t(g * n + i)] = (x.f32()[g * n + i] - mean) / std::sqrt(var + 1e-6) * w.f32()[c] + bias.f32()[c];
            }
          }
          return Outcome{down(b, y), ref};
        });
  }

  for (auto [C, H, W] : {std::tuple{1, 1, 1}, {3, 4, 5}}) {
    const std::string p = "C=" + std::to_string(C) + " " + std::to_string(H) + "x" + std::to_string(W);
    add(Op::upsample_nearest, p, [=](Backend& b) {
      const Tensor x = random_tensor({C, H, W});
      const Tensor y = out(b, {C, 2 * H, 2 * W});
      b.upsample_nearest(up(b, x), y);
      Vec ref;
      for (int c = 0; c < C; ++c)
        for (int i = 0; i < 2 * H; ++i)
          for (int j = 0; j < 2 * W; ++j) ref.push_back(x.f32()[(c * H + i / 2) * W + j / 2]);
      return Outcome{down(b, y), ref};
    });
    add(Op::transpose, p, [=](Backend& b) {
      const Tensor x = random_tensor({C, H * W});
      const Tensor y = out(b, {H * W, C});
      b.transpose(up(b, x), y);
      Vec ref;
      for (int j = 0; j < H * W; ++j)
        for (int c = 0; c < C; ++c) ref.push_back(x.f32()[c * H * W + j]);
      return Outcome{down(b, y), ref};
    });
  }

  // Conversions: the round trip through a 16-bit type equals rounding to it (checked with the
  // scalar reference conversions), within the f32 NMSE bound.
  for (DType half : {DType::bf16, DType::f16}) {
    for (int n : {1, 1000}) {
      add(Op::convert, std::string(dtype_name(half)) + " n=" + std::to_string(n), [=](Backend& b) {
        const Tensor x = random_tensor({n});
        const Tensor h = b.alloc({n}, half), y = out(b, {n});
        b.convert(up(b, x), h);
        b.convert(h, y);
        Vec ref(static_cast<size_t>(n));
        for (int i = 0; i < n; ++i)
          ref[size_t(i)] = half == DType::bf16 ? bf16_to_float(float_to_bf16(x.f32()[i]))
                                               : f16_to_float(float_to_f16(x.f32()[i]));
        return Outcome{down(b, y), ref};
      });
    }
  }
  return cases;
}

}  // namespace

int main() {
  constexpr double kMaxNmse = 1e-10;  // f32 against double references
  const auto cases = make_cases();
  int failed = 0, passed = 0, skipped = 0;
  std::vector<bool> op_covered(size_t(Op::count), false);
  for (const auto& backend : available_backends()) {
    std::printf("backend %s\n", backend->name().c_str());
    for (const Case& c : cases) {
      op_covered[size_t(c.op)] = true;
      if (!backend->supports(c.op, DType::f32)) {
        std::printf("  %-20s %-32s not supported, skipped\n", op_name(c.op), c.params.c_str());
        ++skipped;
        continue;
      }
      const Outcome r = c.run(*backend);
      bool finite = true;
      for (double v : r.got) finite &= std::isfinite(v);
      const bool sizes = r.got.size() == r.expected.size();
      const double err = sizes ? nmse(r.got, r.expected) : 1.0;
      const bool ok = finite && sizes && err <= kMaxNmse;
      std::printf("  %-20s %-32s nmse %.2e %s%s\n", op_name(c.op), c.params.c_str(), err,
                  ok ? "OK" : "FAIL", finite ? "" : " (non-finite values)");
      (ok ? passed : failed)++;
    }
  }
  for (Op op : all_ops())
    if (!op_covered[size_t(op)]) {
      std::printf("op %s has no test case\n", op_name(op));
      ++failed;
    }
  std::printf("%d passed, %d failed, %d skipped\n", passed, failed, skipped);
  return failed ? 1 : 0;
}
