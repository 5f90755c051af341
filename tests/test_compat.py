import pytest

from tftransfer import compat


def test_every_private_internal_we_use_is_there():
    compat.check()


def test_a_missing_internal_fails_loudly_with_its_name():
    class Bare:
        transformer_layers = [object()]

    with pytest.raises(
        compat.CompatError, match=r"keras-hub .*`object._feedforward_intermediate_dense` is missing"
    ):
        compat.set_exact_gelu(Bare())
    with pytest.raises(compat.CompatError, match=r"`Bare.token_embedding` is missing"):
        compat.bert_layers(Bare())
