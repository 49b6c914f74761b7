import pytest

from clipsam_lite.config import PROFILE_ENV, Config, get_config, resolve_profile


def test_presets_name_the_papers_backbones():
    paper = get_config("paper")
    assert (paper.clip_model, paper.clip_pretrained, paper.clip_image_size) == ("ViT-L-14-336-quickgelu", "openai", 518)
    assert paper.clip_layers == (6, 12, 18, 24) and paper.sam_model == "vit_h"
    base = get_config("base")
    assert (base.clip_model, base.sam_model) == ("ViT-B-16-quickgelu", "vit_b")
    tiny = get_config("tiny")
    assert tiny.clip_pretrained is None and tiny.sam_model == "tiny"


def test_env_selects_profile_and_argument_wins(monkeypatch):
    monkeypatch.setenv(PROFILE_ENV, "paper")
    assert get_config().profile == "paper"
    assert get_config("tiny").profile == "tiny"
    monkeypatch.delenv(PROFILE_ENV)
    assert resolve_profile(None) == "base"


def test_unknown_profile_names_the_choices(monkeypatch):
    monkeypatch.setenv(PROFILE_ENV, "huge")
    with pytest.raises(ValueError, match=r"Unknown profile 'huge'.*\$CLIPSAM_PROFILE.*tiny"):
        get_config()


@pytest.mark.parametrize("field,value,match", [
    ("tau_mode", "mean", "tau_mode"), ("negative_strategy", "random", "negative_strategy"),
    ("fusion", "max", "fusion"), ("stages", 4, "stages"), ("clip_layers", (0, 3), "1-based"),
    ("k_pos", 0, "k_pos"), ("alpha", 1.5, "alpha"), ("k_neg", -1, "k_neg"),
])
def test_invalid_values_are_refused_with_the_field_named(field, value, match):
    with pytest.raises(ValueError, match=match):
        get_config("tiny", **{field: value})


def test_replace_validates_and_rejects_unknown_fields():
    cfg = get_config("tiny")
    assert cfg.replace(tau=0.7).tau == 0.7 and cfg.tau == 0.5
    with pytest.raises(ValueError, match="Unknown Config field"):
        cfg.replace(taus=0.7)
    with pytest.raises(ValueError, match="stages"):
        cfg.replace(stages=0)


def test_to_dict_is_json_ready_and_round_trips():
    import json

    cfg = get_config("paper", tau=0.6)
    d = json.loads(json.dumps(cfg.to_dict()))
    assert Config(**d) == cfg
