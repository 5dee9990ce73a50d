"""The CLI's flags: parsing, flagfile resolution, validation, and every shipped recipe."""

import pathlib
import re

import pytest
from absl import flags as absl_flags

from keras_pkkd import flags as pkkd_flags
from keras_pkkd import train

RECIPES = pkkd_flags.shipped_recipes()


def test_main_recipe_parses_from_any_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cfg, text = train.parse(["--flagfile=resnet20.flags"])
    assert (cfg.model, cfg.method, cfg.dataset) == ("resnet20", "pkkd", "cifar10")
    # METHOD.md section 5 via the included cifar.flags, sigma from Table 3.
    assert (cfg.epochs, cfg.batch_size, cfg.lr, cfg.weight_decay, cfg.momentum) == \
        (400, 256, 0.1, 5e-4, 0.9)
    assert cfg.sigma == 10
    assert "--model=resnet20" in text and "--sigma=10.0" in text


def test_bare_name_without_suffix_and_space_form():
    cfg, _ = train.parse(["--flagfile", "resnet32_cifar100_bnn"])
    assert (cfg.model, cfg.dataset, cfg.method) == ("resnet32", "cifar100", "bnn")


@pytest.mark.parametrize("before", [True, False])
def test_command_line_overrides_flagfile_wherever_it_stands(before):
    own = ["--epochs=3", "--sigma=0.5"]
    argv = own + ["--flagfile=resnet20.flags"] if before else ["--flagfile=resnet20.flags"] + own
    cfg, _ = train.parse(argv)
    assert cfg.epochs == 3 and cfg.sigma == 0.5
    assert cfg.batch_size == 256  # still from the flagfile


def test_user_flagfile_includes_relative_to_itself_and_shipped(tmp_path, monkeypatch):
    sub = tmp_path / "configs"
    sub.mkdir()
    (sub / "base.flags").write_text("# comment\n// another\n\n--epochs=7\n")
    (sub / "mine.flags").write_text("--flagfile=base.flags\n--flagfile=vgg_small.flags\n"
                                    "--batch_size=32\n")
    monkeypatch.chdir(tmp_path)
    cfg, _ = train.parse([f"--flagfile={sub / 'mine.flags'}"])
    # vgg_small.flags (shipped) sets epochs=400 after base.flags' 7: file order is kept.
    assert (cfg.model, cfg.epochs, cfg.batch_size) == ("vgg_small", 400, 32)


def test_resolved_flags_text_is_a_valid_flagfile(tmp_path):
    cfg, text = train.parse(["--flagfile=ablation_raw_fixed.flags", "--epochs=2"])
    (tmp_path / "resolved.flags").write_text(text)
    again, _ = train.parse([f"--flagfile={tmp_path / 'resolved.flags'}"])
    assert vars(again) == vars(cfg)


def _error(argv, capsys, code=2):
    with pytest.raises(SystemExit) as exc:
        train.parse(argv)
    assert exc.value.code == code
    return capsys.readouterr().err


def test_unknown_flag_is_named(capsys):
    assert "Unknown command line flag 'no_such_flag'" in _error(["--no_such_flag=1"], capsys)


def test_bad_values_are_named(capsys):
    assert "--model" in _error(["--model=resnet99"], capsys) or "resnet99" in \
        _error(["--model=resnet99"], capsys)
    assert "epochs" in _error(["--epochs=0"], capsys)
    assert "--sigma must be > 0" in _error(["--sigma=0"], capsys)
    assert "--alpha must be in [0, 1]" in _error(["--alpha=1.5"], capsys)
    assert "--teacher=fixed needs --teacher_model" in _error(["--teacher=fixed"], capsys)
    assert "needs a KD method" in _error(["--method=cnn", "--feature_kd=raw"], capsys)
    assert "go together" in _error(["--train_data=x.npz"], capsys)
    assert "unexpected arguments" in _error(["positional"], capsys)


def test_missing_flagfile_lists_the_shipped_recipes(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    err = _error(["--flagfile=resnet21.flags"], capsys)
    assert "'resnet21.flags' not found" in err and "resnet20.flags" in err


def test_flagfile_cycle_and_malformed_lines(tmp_path, capsys):
    (tmp_path / "a.flags").write_text("--flagfile=b.flags\n")
    (tmp_path / "b.flags").write_text("--flagfile=a.flags\n")
    assert "include cycle" in _error([f"--flagfile={tmp_path / 'a.flags'}"], capsys)
    (tmp_path / "c.flags").write_text("epochs=3\n")
    assert "c.flags:1: expected --flag=value" in _error([f"--flagfile={tmp_path / 'c.flags'}"],
                                                        capsys)


def test_helpfull_documents_every_flag(capsys):
    with pytest.raises(SystemExit) as exc:
        train.parse(["--helpfull"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    fv = pkkd_flags.define_flags(absl_flags.FlagValues())
    for name in fv:
        assert f"--{name}" in out or f"--[no]{name}" in out, name


def test_recipes_cover_every_table_of_the_method():
    names = set(RECIPES)
    for model in ("resnet20", "resnet32", "vgg_small"):
        for ds in ("cifar10", "cifar100"):
            for method in ("cnn", "ann", "bnn", "mmd", "pkkd"):
                assert f"{model}_{ds}_{method}.flags" in names
    for model in ("resnet18", "resnet50"):
        for method in ("cnn", "ann", "bnn", "mmd", "pkkd"):
            assert f"{model}_imagenet2012_{method}.flags" in names
    for fk in ("none", "raw", "conv", "kernel", "kernel_conv"):
        for teacher in ("fixed", "progressive"):
            assert f"ablation_{fk}_{teacher}.flags" in names
    for ds in ("cifar10", "cifar100"):
        for sigma in ("0.1", "0.5", "1", "5", "10"):
            assert f"sigma_{ds}_{sigma}.flags" in names


@pytest.mark.parametrize("recipe", [r for r in RECIPES if r not in ("cifar.flags",
                                                                       "imagenet.flags")])
def test_every_recipe_parses_to_what_its_name_says(recipe):
    cfg, _ = train.parse([f"--flagfile={recipe}"])
    stem = recipe[:-len(".flags")]
    m = re.fullmatch(r"(resnet20|resnet32|vgg_small|resnet18|resnet50)_(\w+?)_(\w+)", stem)
    if m:
        assert (cfg.model, cfg.dataset, cfg.method) == m.groups()
    elif stem.startswith("ablation_"):
        fk, teacher = stem[len("ablation_"):].rsplit("_", 1)
        assert (cfg.model, cfg.method, cfg.feature_kd, cfg.teacher) == \
            ("resnet20", "pkkd", fk, teacher)
    elif stem.startswith("sigma_"):
        _, ds, sigma = stem.split("_")
        assert (cfg.model, cfg.dataset, cfg.sigma) == ("resnet20", ds, float(sigma))
    else:
        assert cfg.model == stem and cfg.method == "pkkd"
    assert cfg.epochs == (150 if cfg.dataset == "imagenet2012" else 400)


def test_every_recipe_builds_its_models():
    """Each recipe's student (and teacher) builds and pairs; one build per architecture."""
    from keras_pkkd import PKKDModel
    from keras_pkkd.training import networks

    built = {}

    def get(model, kind, classes, size):
        key = (model, kind, classes)
        if key not in built:
            built[key] = networks.BUILDERS[model](kind, num_classes=classes,
                                                  input_shape=(size, size, 3))
        return built[key]

    classes = {"cifar10": 10, "cifar100": 100, "imagenet2012": 1000}
    for recipe in RECIPES:
        if recipe in ("cifar.flags", "imagenet.flags"):
            continue
        cfg, _ = train.parse([f"--flagfile={recipe}"])
        kind, feature_kd = pkkd_flags.student_feature_kd(cfg)
        size = 224 if cfg.dataset == "imagenet2012" else 32
        student = get(cfg.model, kind, classes[cfg.dataset], size)
        assert student.output_shape == (None, classes[cfg.dataset])
        if feature_kd is not False:
            teacher = get(cfg.model, "conv", classes[cfg.dataset], size)
            PKKDModel(student, teacher, feature_kd=feature_kd, teacher_mode="progressive",
                      sigma=cfg.sigma)


def test_recipe_files_are_documented():
    for recipe in RECIPES:
        text = (pkkd_flags.RECIPES_DIR / recipe).read_text()
        assert text.startswith("#"), f"{recipe} has no header comment"
    assert pathlib.Path(pkkd_flags.RECIPES_DIR).is_dir()
