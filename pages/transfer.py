"""Transfer learning: pre-trained sentence vectors need far fewer labels than features learned from scratch."""

from pages.common import page
from pages.views import transfer

page(*transfer.PARAMS, title="nav_transfer", intro="transfer_intro")
transfer.learning_curves()
transfer.encoder_fine_tune()
