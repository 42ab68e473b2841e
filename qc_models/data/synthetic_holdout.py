"""Hold-out synthetic categories: unseen textures, objects and defect kinds for honest generalisation checks.

Detectors must also reach their targets on data they were never tuned on. The
demo categories (:data:`qc_models.data.synthetic.DEMO_CATEGORIES`) are what the
demo, the tests and day-to-day tuning use; the categories here are kept apart:

* other parts: glazed ``tile`` and grained ``leather`` (textures), a ``screw`` at
  any rotation and a printed ``capsule`` (objects);
* other defect kinds, none shared with the demo categories;
* another rendering approach: height fields lit by a directional light (Lambert +
  Blinn-Phong, cast shadow, vignetting) developed by a camera model (gamma,
  monochrome sensor for the screw, shot + read noise, row banding), instead of
  painted brightness profiles; other palettes and noise models (cellular grain,
  speckle) too.

Importing this module registers the categories in
:data:`qc_models.data.synthetic.CATEGORIES`, so ``generate_dataset(out,
categories=HOLDOUT_CATEGORIES)`` and ``render_sample("screw", ...)`` work with the
same determinism and exact masks; :data:`DEMO_CATEGORIES` is unchanged, so
nothing generates them by default.
"""

from __future__ import annotations

from collections.abc import MutableMapping

from qc_models.data import synthetic_holdout_objects as obj
from qc_models.data import synthetic_holdout_textures as tex
from qc_models.data.synthetic import CATEGORIES, Sampler, SyntheticCategory
from qc_models.data.synthetic_holdout_render import SceneDefect, SceneFn, as_defect, as_render

__all__ = ["HOLDOUT", "HOLDOUT_CATEGORIES", "register"]


def _category(
    name: str, kind: str, sample: Sampler, scene: SceneFn, defects: dict[str, SceneDefect]
) -> SyntheticCategory:
    """Wrap scene-level functions into the generator's render/defect callables."""
    return SyntheticCategory(name, kind, sample, as_render(scene), {k: as_defect(scene, f) for k, f in defects.items()})


#: The hold-out categories by name, in the same form as the demo ones.
HOLDOUT: dict[str, SyntheticCategory] = {
    c.name: c
    for c in (
        _category(
            "tile",
            "texture",
            tex.tile_sample,
            tex.tile_scene,
            {
                "chip": tex.tile_chip,
                "glue_strip": tex.tile_glue_strip,
                "gray_stroke": tex.tile_gray_stroke,
                "rough": tex.tile_rough,
            },
        ),
        _category(
            "leather",
            "texture",
            tex.leather_sample,
            tex.leather_scene,
            {"cut": tex.leather_cut, "fold": tex.leather_fold, "glue": tex.leather_glue, "poke": tex.leather_poke},
        ),
        _category(
            "screw",
            "object",
            obj.screw_sample,
            obj.screw_scene,
            {
                "damaged_tip": obj.screw_damaged_tip,
                "head_nick": obj.screw_head_nick,
                "thread_crush": obj.screw_thread_crush,
            },
        ),
        _category(
            "capsule",
            "object",
            obj.capsule_sample,
            obj.capsule_scene,
            {"dent": obj.capsule_dent, "faulty_imprint": obj.capsule_faulty_imprint, "squeeze": obj.capsule_squeeze},
        ),
    )
}

#: Hold-out category names, in a stable order; never generated unless asked for by name.
HOLDOUT_CATEGORIES: tuple[str, ...] = tuple(HOLDOUT)


def register(categories: MutableMapping[str, SyntheticCategory] = CATEGORIES) -> None:
    """Make the hold-out categories known to the generator (idempotent; demo names are never replaced)."""
    for name, spec in HOLDOUT.items():
        if categories.get(name, spec) is not spec:
            raise ValueError(f"synthetic category '{name}' is already defined by another module")
        categories[name] = spec


register()
