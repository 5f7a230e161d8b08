"""Transfer learning: pre-trained sentence vectors need far fewer labels than features learned from scratch; and\ndistillation, a large model's answers teaching a small one."""

from pages.common import page
from pages.views import transfer

page(*transfer.PARAMS, title="nav_transfer", intro="transfer_intro")
transfer.learning_curves()
transfer.encoder_fine_tune()
transfer.distillation()
