/* tinykeras feature front end (C99, no heap): the device side of a recipe's feature pipeline.
 *
 * Audio recipes (kws: MFCC, sensor: log-mel) reproduce tinykeras.features (tf.signal): frames of
 * TK_FE_FRAME_LENGTH samples every TK_FE_FRAME_STEP, periodic Hann window, zero-padded real FFT of
 * TK_FE_FFT_LENGTH, magnitude, mel filterbank, ln(mel + TK_FE_LOG_OFFSET), and for MFCC the DCT-II that
 * tf.signal.mfccs_from_log_mel_spectrograms applies (first TK_FE_NUM_COEFFS coefficients).
 * IMU and vibration data use per-channel normalisation: (x - mean) / std.
 * The constants live in tk_frontend_tables.h, generated per model by tinykeras.
 */
#ifndef TK_FRONTEND_H_
#define TK_FRONTEND_H_

#include <stdint.h>

#include "tk_frontend_tables.h"

#ifdef __cplusplus
extern "C" {
#endif

#if defined(TK_FE_KIND_MFCC) || defined(TK_FE_KIND_LOG_MEL)
/* One frame: TK_FE_FRAME_LENGTH float samples in [-1, 1] -> TK_FE_NUM_COEFFS features (not normalised). */
void tk_fe_audio_frame(const float *samples, float *out);
/* A clip: TK_FE_CLIP_SAMPLES samples -> TK_FE_NUM_FRAMES x TK_FE_NUM_COEFFS features (normalised if the
 * model's settings ask for it). */
void tk_fe_audio_clip(const float *audio, float *out);
/* |FFT| of TK_FE_FFT_LENGTH real samples (overwritten) -> TK_FE_NUM_BINS magnitudes. */
void tk_fe_rfft_magnitude(float *x, float *magnitude);
#endif

/* 16-bit PCM -> float in [-1, 1) (divides by 32768, as the WAV readers do). */
void tk_fe_pcm16_to_float(const int16_t *pcm, float *out, int n);

#if defined(TK_FE_NORMALIZE)
/* In place: rows x TK_FE_CHANNELS values, channel-wise (x - mean) * (1 / std). */
void tk_fe_normalize(float *x, int rows);
#endif

/* Float features -> int8 model input: round(x / scale) + zero_point, saturated (round half away from zero). */
void tk_fe_quantize(const float *x, int8_t *q, int n, float scale, int zero_point);

#ifdef __cplusplus
}
#endif

#endif /* TK_FRONTEND_H_ */
