"""When the BIG-bench archive cannot be had: setup goes on, and the tasks that read it refuse before training."""
import pytest

from iapt.errors import UserError
from iapt.harness.grid import refuse_without_bigbench
from scripts import fetch_bigbench


def test_a_plan_that_reads_the_missing_archive_is_refused_before_anything_trains(tmp_path, monkeypatch):
    monkeypatch.setenv("IAPT_CACHE", str(tmp_path))               # an empty cache: no archive, no extraction
    refuse_without_bigbench(["sst2", "social_i_qa", "mmlu"])      # none of them reads it
    with pytest.raises(UserError, match=r"fever, ni read\(s\) the BIG-bench 1.0.0 source archive.*--from PATH"):
        refuse_without_bigbench(["sst2", "fever", "ni"])


def test_a_run_of_a_table_refuses_at_once_naming_the_tasks(tmp_path, monkeypatch, capsys):
    from experiments import table1_glue
    monkeypatch.setenv("IAPT_CACHE", str(tmp_path))
    with pytest.raises(SystemExit):
        table1_glue.main(["--profile", "cpu", "--stages", "3", "--out-dir", str(tmp_path / "out")])   # fever
    assert "fever read(s) the BIG-bench" in capsys.readouterr().err
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_setup_goes_on_when_pypi_does_not_list_the_archive(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(fetch_bigbench, "pypi_url", lambda: None)
    assert fetch_bigbench.main([str(tmp_path)]) == 0
    assert "--from PATH" in capsys.readouterr().err and not any(tmp_path.iterdir())


def test_a_copy_with_the_wrong_checksum_is_refused_and_nothing_is_left(tmp_path):
    wrong = tmp_path / "copy.tar.gz"
    wrong.write_bytes(b"not the archive")
    dest = tmp_path / "downloads"
    assert fetch_bigbench.main(["--from", str(wrong), str(dest)]) == 1
    assert list(dest.iterdir()) == []


def test_a_broken_download_leaves_no_partial_file_and_lets_setup_go_on(tmp_path, monkeypatch, capsys):
    import io

    class CutOff(io.BytesIO):          # a download that breaks after its first chunk
        def read(self, n=-1):
            if self.tell():
                raise ConnectionResetError("connection reset")
            return super().read(n)
    monkeypatch.setattr(fetch_bigbench, "pypi_url", lambda: "https://example.invalid/bigbench-1.0.0.tar.gz")
    monkeypatch.setattr(fetch_bigbench.urllib.request, "urlopen", lambda url, timeout: CutOff(b"x" * (2 << 20)))
    assert fetch_bigbench.main([str(tmp_path)]) == 0
    assert "failed (connection reset)" in capsys.readouterr().err and not any(tmp_path.iterdir())
