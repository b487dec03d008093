"""Shadow-model defense (shadow_defense.txt): Grad-CAM++ foreground maps and the noise maps
N^1..N^4 -> N of Sec. 4.3 (eqs. 8-18), and the per-client shadow defense (Sec. 4.1-4.3:
latent pre-training, pseudo local training, pseudo fine-tuning, eq. 6-7).

Registered as the data-level defense ``shadow``: ``gradinv.defenses.build_data("shadow",
prior="gan-chest_xray-32", latent_epochs="80", schedule="fixed")`` builds one
:class:`ShadowDefense` per client from :class:`ShadowConfig` (noise-map fields included)."""

from gradinv.defenses.shadow.defense import ShadowConfig, ShadowDefense
from gradinv.defenses.shadow.gradcam import (
    bounding_box,
    default_layer,
    foreground_mask,
    grad_cam_pp,
)
from gradinv.defenses.shadow.noise_maps import (
    SCHEDULES,
    Config,
    NoiseMaps,
    absolute_noise,
    alpha_cam,
    cam_reduce,
    cam_reduce_relative,
    equalized_noise,
    error_map,
    foreground_map,
    histogram_equalize,
    momentum,
    noise_map,
    noise_scale,
    normalize,
    relative_noise,
    sharpen,
)

__all__ = [
    "SCHEDULES",
    "Config",
    "ShadowConfig",
    "ShadowDefense",
    "NoiseMaps",
    "absolute_noise",
    "alpha_cam",
    "bounding_box",
    "cam_reduce",
    "cam_reduce_relative",
    "default_layer",
    "equalized_noise",
    "error_map",
    "foreground_map",
    "foreground_mask",
    "grad_cam_pp",
    "histogram_equalize",
    "momentum",
    "noise_map",
    "noise_scale",
    "normalize",
    "relative_noise",
    "sharpen",
]
