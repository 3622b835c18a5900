import pytest
from django.core.management import CommandError, call_command

from trainer.models import ModelVersion


@pytest.mark.slow
def test_it_builds_a_tiny_model_and_registers_it(project, tmp_path):
    out = tmp_path / "tiny"
    call_command("build_tiny_models", out=str(out), pretrain_steps=0, project=project.id)
    assert (out / "config.json").is_file() and (out / "tokenizer.json").is_file()
    version = ModelVersion.objects.get(project=project)
    assert (version.role, version.path) == ("policy", str(out))


@pytest.mark.django_db
def test_it_refuses_an_unknown_project(tmp_path):
    with pytest.raises(CommandError, match="No project"):
        call_command("build_tiny_models", out=str(tmp_path / "x"), project=10**9)
