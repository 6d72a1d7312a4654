/* tinykeras feature front end: see tk_frontend.h. C99, no heap, static scratch buffers. */
#include "tk_frontend.h"

#include <math.h>

void tk_fe_pcm16_to_float(const int16_t *pcm, float *out, int n) {
  for (int i = 0; i < n; ++i) out[i] = (float)pcm[i] * (1.0f / 32768.0f);
}

void tk_fe_quantize(const float *x, int8_t *q, int n, float scale, int zero_point) {
  for (int i = 0; i < n; ++i) {
    long v = lroundf(x[i] / scale) + zero_point;
    q[i] = (int8_t)(v < -128 ? -128 : (v > 127 ? 127 : v));
  }
}

#if defined(TK_FE_NORMALIZE)
void tk_fe_normalize(float *x, int rows) {
  for (int r = 0; r < rows; ++r) {
    for (int c = 0; c < TK_FE_CHANNELS; ++c) {
      float *v = &x[r * TK_FE_CHANNELS + c];
      *v = (*v - tk_fe_mean[c]) * tk_fe_inv_std[c];
    }
  }
}
#endif

#if defined(TK_FE_KIND_MFCC) || defined(TK_FE_KIND_LOG_MEL)

#define TK_FE_HALF (TK_FE_FFT_LENGTH / 2)

static float s_re[TK_FE_HALF];
static float s_im[TK_FE_HALF];
static float s_frame[TK_FE_FFT_LENGTH];
static float s_mag[TK_FE_NUM_BINS];

/* In-place iterative radix-2 complex FFT of length n (n divides TK_FE_FFT_LENGTH). */
static void fft_complex(float *re, float *im, int n) {
  for (int i = 1, j = 0; i < n; ++i) {
    int bit = n >> 1;
    for (; j & bit; bit >>= 1) j ^= bit;
    j ^= bit;
    if (i < j) {
      float t = re[i]; re[i] = re[j]; re[j] = t;
      t = im[i]; im[i] = im[j]; im[j] = t;
    }
  }
  for (int len = 2; len <= n; len <<= 1) {
    const int step = TK_FE_FFT_LENGTH / len; /* W_len^j = W_N^(j * N / len) */
    const int half = len >> 1;
    for (int i = 0; i < n; i += len) {
      for (int j = 0; j < half; ++j) {
        const float wr = tk_fe_twiddle_re[j * step], wi = tk_fe_twiddle_im[j * step];
        const int a = i + j, b = a + half;
        const float tr = re[b] * wr - im[b] * wi;
        const float ti = re[b] * wi + im[b] * wr;
        re[b] = re[a] - tr; im[b] = im[a] - ti;
        re[a] += tr; im[a] += ti;
      }
    }
  }
}

/* Real FFT of N samples through one complex FFT of N/2 points (even samples real, odd imaginary). */
void tk_fe_rfft_magnitude(float *x, float *magnitude) {
  for (int m = 0; m < TK_FE_HALF; ++m) {
    s_re[m] = x[2 * m];
    s_im[m] = x[2 * m + 1];
  }
  fft_complex(s_re, s_im, TK_FE_HALF);
  for (int k = 0; k <= TK_FE_HALF; ++k) {
    const int k1 = k % TK_FE_HALF, k2 = (TK_FE_HALF - k) % TK_FE_HALF;
    const float zr = s_re[k1], zi = s_im[k1], cr = s_re[k2], ci = -s_im[k2];
    const float er = 0.5f * (zr + cr), ei = 0.5f * (zi + ci);  /* FFT of the even samples */
    const float or_ = 0.5f * (zi - ci), oi = -0.5f * (zr - cr); /* FFT of the odd samples */
    const float wr = k < TK_FE_HALF ? tk_fe_twiddle_re[k] : -1.0f;
    const float wi = k < TK_FE_HALF ? tk_fe_twiddle_im[k] : 0.0f;
    const float xr = er + wr * or_ - wi * oi;
    const float xi = ei + wr * oi + wi * or_;
    magnitude[k] = sqrtf(xr * xr + xi * xi);
  }
}

void tk_fe_audio_frame(const float *samples, float *out) {
  for (int n = 0; n < TK_FE_FFT_LENGTH; ++n) {
    s_frame[n] = n < TK_FE_FRAME_LENGTH ? samples[n] * tk_fe_window[n] : 0.0f;
  }
  tk_fe_rfft_magnitude(s_frame, s_mag);
  float log_mel[TK_FE_NUM_MEL_BINS];
  int w = 0;
  for (int b = 0; b < TK_FE_NUM_MEL_BINS; ++b) {
    float acc = 0.0f;
    for (int j = 0; j < tk_fe_mel_count[b]; ++j) acc += tk_fe_mel_weights[w + j] * s_mag[tk_fe_mel_start[b] + j];
    w += tk_fe_mel_count[b];
    log_mel[b] = logf(acc + TK_FE_LOG_OFFSET);
  }
#if defined(TK_FE_KIND_MFCC)
  for (int k = 0; k < TK_FE_NUM_COEFFS; ++k) {
    float acc = 0.0f;
    for (int b = 0; b < TK_FE_NUM_MEL_BINS; ++b) acc += tk_fe_dct[k * TK_FE_NUM_MEL_BINS + b] * log_mel[b];
    out[k] = acc;
  }
#else
  for (int b = 0; b < TK_FE_NUM_MEL_BINS; ++b) out[b] = log_mel[b];
#endif
}

void tk_fe_audio_clip(const float *audio, float *out) {
  for (int f = 0; f < TK_FE_NUM_FRAMES; ++f) {
    tk_fe_audio_frame(audio + f * TK_FE_FRAME_STEP, out + f * TK_FE_NUM_COEFFS);
  }
#if defined(TK_FE_NORMALIZE)
  tk_fe_normalize(out, TK_FE_NUM_FRAMES);
#endif
}

#endif /* audio */
