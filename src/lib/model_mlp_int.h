/*
 * model_mlp_int.h -- internals of the "mlp" family that its unit test
 * reaches: the network's shape and the training objective with its
 * gradient, so that the analytic gradient can be checked against finite
 * differences. Nothing outside model_mlp.c and tests/unit/test_model_mlp.c
 * includes this file.
 */
#ifndef CH_MODEL_MLP_INT_H
#define CH_MODEL_MLP_INT_H

#include <stddef.h>

#include "ch/model.h"

/* Units per layer. The parameter vector holds, layer by layer, the weights
 * (row-major: one row of 'inputs' weights per unit) and then the biases:
 * hidden layer 1, hidden layer 2 when 'hidden2' > 0, the output unit. */
typedef struct ch__mlp_shape {
    size_t n_in;    /* input features */
    size_t hidden;  /* units in the first hidden layer, >= 1 */
    size_t hidden2; /* units in the second hidden layer, 0 for none */
    int activation; /* 0 tanh, 1 ReLU */
} ch__mlp_shape;

/* Number of parameters of a network of shape 's', or 0 on overflow. */
size_t ch__mlp_n_params(const ch__mlp_shape *s);

/*
 * The objective that training minimizes, over all rows of 'd':
 *     sum_i w_i * logloss_i / sum_i w_i + (l2 / 2) * (sum of squared weights)
 * (biases are not penalized) at parameters 'theta' into '*loss', and its
 * gradient into 'grad' (ch__mlp_n_params() entries) unless 'grad' is NULL.
 * Uses the same code as a training step. Errors: CH_ENOMEM.
 */
CH_NODISCARD ch_err ch__mlp_objective(const ch__mlp_shape *s, const double *theta,
                                      const ch_dataset *d, double l2, double *loss, double *grad);

#endif /* CH_MODEL_MLP_INT_H */
